"""Dask clusters: a LocalCluster on this machine, or a scheduler someone already runs."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from .errors import AtlasError
from .execute import Backend

CONNECT_SECONDS = 10


@contextlib.contextmanager
def backend_for(name: str, n_jobs: int, scheduler: str | None = None) -> Iterator[Backend]:
    """Yield the backend a build runs on, starting (and at the end stopping) a Dask
    cluster or connection when it is one."""
    if name != "dask":
        yield Backend(name, n_jobs)
        return
    with dask_client(n_jobs, scheduler) as (client, threads):
        yield Backend("dask", n_jobs, client, threads)


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
        yield client, max(1, (os.cpu_count() or 1) // n_jobs)
