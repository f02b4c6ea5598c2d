"""Where jobs run: in this process, in joblib workers, or on a Dask cluster. Workers send
their results back and only this process writes the cache (so a cluster needs no shared
filesystem); a worker that dies costs only the jobs it held."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import torch
from joblib import Parallel, delayed
from joblib.externals.loky.process_executor import TerminatedWorkerError

from .adapter import ModelAdapter
from .cache import Cache
from .examples import ExampleStore, LayerFindings
from .jobs import DatasetJob, Job, Outcome, failed, first_line, run_job
from .plugins import Registry


def _set_threads(threads: int | None) -> None:
    """Give torch its share of the machine's cores (None: leave it as it is)."""
    if threads:
        torch.set_num_threads(threads)


def run_on_worker(job: Job | DatasetJob, threads: int | None, registry: Registry | None):
    """Run one job in a worker (a process, a thread, or a Dask worker)."""
    _set_threads(threads)
    if isinstance(job.model, ModelAdapter):  # hooks and patched ReLUs are per module
        job = replace(job, model=copy.deepcopy(job.model))
    return run_job(job, registry)


@dataclass(frozen=True)
class Backend:
    """Where jobs run: a joblib backend with n_jobs workers, or a connected Dask client
    (``threads``: the torch threads each Dask task may use, None to leave them)."""

    name: str = "sequential"
    n_jobs: int = 1
    client: object | None = field(default=None, compare=False)
    threads: int | None = None


def _run_parallel(
    jobs: Sequence[Job | DatasetJob], backend: Backend, registry: Registry | None
) -> Iterable[list[Outcome]]:
    """Yield each job's outcomes as workers finish them."""
    if backend.name == "dask":
        yield from _run_on_dask(jobs, backend)
        return
    shared = registry if backend.name == "threading" else None  # processes load their own
    threads = max(1, (os.cpu_count() or 1) // backend.n_jobs)
    yield from _survive_deaths(list(jobs), backend, threads, shared)


def _indexed(i: int, job, threads: int | None, registry: Registry | None):
    return i, run_on_worker(job, threads, registry)


def _survive_deaths(
    jobs: list, backend: Backend, threads: int, registry: Registry | None, alone: bool = False
) -> Iterable[list[Outcome]]:
    """Run jobs on the joblib backend; when a worker process dies (killed, out of memory, a
    crash in an extension), run what is left again, then one job at a time to find the job
    that kills its worker: only that job's units fail."""
    pending = dict(enumerate(jobs))
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


def _run_on_dask(jobs: Sequence[Job | DatasetJob], backend: Backend) -> Iterable[list[Outcome]]:
    """Submit the jobs to the Dask cluster and yield outcomes as they finish; a job whose
    workers kept dying fails alone; stopping early (Ctrl-C) cancels what is pending."""
    from distributed import as_completed

    client = backend.client
    futures = client.map(run_on_worker, jobs, threads=backend.threads, registry=None, pure=False)
    job_of = dict(zip(futures, jobs, strict=True))
    try:
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # KilledWorker and the like: the job's, not the build's
                yield failed(job_of[future], f"its Dask task failed ({first_line(exc)})")
    finally:
        client.cancel(futures)


def _step_progress(job: Job | DatasetJob, progress: Callable[[float], None] | None):
    """Return a per-step callback that advances progress by the job's share of a step."""
    if progress is None:
        return None
    if isinstance(job, DatasetJob):
        return progress  # the pass reports images looked at
    per_step = job.images / job.tasks[0].settings.steps
    return lambda _step: progress(per_step)


def execute(
    jobs: Sequence[Job | DatasetJob],
    backend: Backend | None = None,
    registry: Registry | None = None,
    progress: Callable[[float], None] | None = None,
) -> list[Outcome]:
    """Run every job and return all outcomes; progress receives units done (fractions too).

    With one worker and no cluster everything runs in this process, with this registry.
    """
    backend = backend or Backend()
    outcomes: list[Outcome] = []
    if backend.n_jobs == 1 and backend.name != "dask":
        for job in jobs:
            outcomes += write(run_job(job, registry, _step_progress(job, progress)), job.cache_root)
        return outcomes
    for done in _run_parallel(jobs, backend, registry):
        outcomes += write(done, jobs[0].cache_root)
        if progress:
            progress(sum(o.images for o in done))
    return outcomes


def write(outcomes: Sequence[Outcome], cache_root: str) -> list[Outcome]:
    """Store what workers sent back (only this process writes the cache); return the
    outcomes without their payloads."""
    cache, examples = Cache(cache_root), ExampleStore(cache_root)
    for outcome in outcomes:
        for item in outcome.stored:
            if isinstance(item, LayerFindings):
                examples.put(item)
            else:
                cache.put_encoded(item)
    return [replace(o, stored=()) for o in outcomes]
