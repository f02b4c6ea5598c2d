"""Where jobs run, as objects chosen once from the recipe or CLI: this process, threads,
loky worker processes, or a Dask cluster. Workers send their results back and only this
process writes the cache (so a cluster needs no shared filesystem); a worker that dies costs
only the jobs it held."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from joblib import Parallel, delayed
from joblib.externals.loky.process_executor import TerminatedWorkerError

from ..errors import AtlasError
from ..registry import Registry
from .jobs import DatasetJob, Job, Outcome, failed, first_line
from .worker import run_job, run_on_worker

CONNECT_SECONDS = 10
OnStep = Callable[[Job | DatasetJob], Callable[[int], None] | None]


@dataclass(frozen=True)
class Backend:
    """Runs jobs and yields each job's outcomes as it finishes.

    ``shares_memory``: jobs may carry a live module (they run in this process);
    ``remote``: workers may be on other machines (a live module cannot be sent there).
    """

    n_jobs: int = 1
    name = "sequential"
    shares_memory = True
    remote = False
    reports_steps = True  # progress arrives step by step (else: as each job finishes)

    def run(
        self, jobs: Sequence[Job | DatasetJob], registry: Registry | None, on_step: OnStep
    ) -> Iterable[list[Outcome]]:
        """Run the jobs one after another in this process, with per-step progress."""
        for job in jobs:
            yield run_job(job, registry, on_step(job))


@dataclass(frozen=True)
class Threads(Backend):
    """joblib threads in this process (a live module can be shared by them)."""

    name = "threading"
    reports_steps = False

    def run(self, jobs, registry, on_step) -> Iterable[list[Outcome]]:
        """Run the jobs on n_jobs threads, sharing this registry."""
        yield from _joblib(list(jobs), self, _threads(self.n_jobs), registry)


@dataclass(frozen=True)
class Loky(Backend):
    """loky worker processes: each loads plugins and models itself."""

    name = "loky"
    shares_memory = False
    reports_steps = False

    def run(self, jobs, registry, on_step) -> Iterable[list[Outcome]]:
        """Run the jobs on n_jobs processes, surviving the death of any of them."""
        yield from _joblib(list(jobs), self, _threads(self.n_jobs), None)


@dataclass(frozen=True)
class Dask(Backend):
    """A connected ``distributed.Client``; ``threads``: torch threads per task (None: as
    the workers are set up)."""

    name = "dask"
    shares_memory = False
    reports_steps = False
    client: object = field(default=None, compare=False)
    threads: int | None = None
    remote: bool = True  # a LocalCluster's workers are on this machine: False

    def run(self, jobs, registry, on_step) -> Iterable[list[Outcome]]:
        """Submit the jobs and yield outcomes as they finish; a job whose workers kept dying
        fails alone; stopping early (Ctrl-C) cancels what is pending."""
        from distributed import as_completed

        client = self.client
        futures = client.map(run_on_worker, jobs, threads=self.threads, registry=None, pure=False)
        job_of = dict(zip(futures, jobs, strict=True))
        try:
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:  # KilledWorker and the like: the job's, not the build's
                    yield failed(job_of[future], f"its Dask task failed ({first_line(exc)})")
        finally:
            client.cancel(futures)


def _threads(n_jobs: int) -> int:
    """Return the torch threads each of n_jobs workers may use."""
    return max(1, (os.cpu_count() or 1) // n_jobs)


def _indexed(i: int, job, threads: int | None, registry: Registry | None):
    return i, run_on_worker(job, threads, registry)


def _joblib(
    jobs: list, backend: Backend, threads: int, registry: Registry | None
) -> Iterable[list[Outcome]]:
    """Run jobs on a joblib backend; when a worker process dies (killed, out of memory, a
    crash in an extension), run what is left again, then one job at a time to find the job
    that kills its worker: only that job's units fail."""
    pending = dict(enumerate(jobs))
    alone = False
    while pending:
        batch = [next(iter(pending.items()))] if alone else list(pending.items())
        parallel = Parallel(
            n_jobs=backend.n_jobs, backend=backend.name, return_as="generator_unordered"
        )
        try:
            for i, outcomes in parallel(
                delayed(_indexed)(i, job, threads, registry) for i, job in batch
            ):
                del pending[i]
                yield outcomes
        except TerminatedWorkerError as exc:
            if alone or len(batch) == 1:  # found the job that kills its worker
                i, job = batch[0]
                del pending[i]
                yield failed(job, f"its worker process died ({first_line(exc)})")
                alone = False
            else:
                alone = True


KINDS = {"sequential": Backend, "threading": Threads, "loky": Loky, "dask": Dask}


@contextlib.contextmanager
def backend_for(
    name: str, n_jobs: int = 1, scheduler: str | None = None, live: bool = False
) -> Iterator[Backend]:
    """Yield the backend a build runs on, chosen once: one worker and no cluster runs in this
    process; a live module (``live``) stays in this process (threads for several workers)
    and cannot go to a cluster. A Dask cluster or connection is started here and stopped at
    the end."""
    kind = KINDS[name]
    if live and kind is Dask:
        raise AtlasError(
            "a live module cannot be sent to a Dask cluster: save it and build from a file "
            "(file:PATH) or a source its workers can load"
        )
    if kind is Dask:
        with dask_client(n_jobs, scheduler) as (client, threads):
            yield Dask(n_jobs, client, threads, remote=scheduler is not None)
        return
    if n_jobs == 1:
        yield Backend(1)
    elif live and not kind.shares_memory:
        yield Threads(n_jobs)
    else:
        yield kind(n_jobs)


@contextlib.contextmanager
def dask_client(n_jobs: int, scheduler: str | None = None) -> Iterator[tuple[object, int | None]]:
    """Yield a connected ``distributed.Client`` and the torch threads each task may use.

    With a scheduler address, connect to that cluster (its workers' own settings decide
    their threads: None). Without, start a LocalCluster of n_jobs single-threaded worker
    processes listening on localhost only, and give each task its share of the cores.
    Closing the client cancels whatever is still pending.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise AtlasError(
            "the dask backend needs dask.distributed: pip install 'feature-atlas[dask]'"
        ) from None
    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_SECONDS)
        except (OSError, TimeoutError) as exc:
            raise AtlasError(
                f"cannot reach the Dask scheduler at {scheduler} within {CONNECT_SECONDS} s "
                f"({exc}); start one with `dask scheduler` or check the address"
            ) from None
        with client:
            yield client, None
        return
    import dask

    # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which made torch's
    # CPU steps 2.4x slower here (glibc hands memory back on every large free).
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = LocalCluster(
            n_workers=n_jobs,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    with cluster, Client(cluster) as client:
        yield client, _threads(n_jobs)
