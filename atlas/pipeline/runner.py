"""The one task runner that the CLI, ``atlas.build`` and every ``atlas.visualize`` path use:
batches sized to the memory at hand, jobs run on a backend (out-of-memory halving and the
NaN retry happen in the worker), results stored by a sink, progress reported to a callback."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ..models.adapter import ModelAdapter
from ..models.layers import INPUT
from ..registry import Registry
from ..store.cache import Cache
from ..store.findings import AnalysisStore, Finding, FindingsStore, LayerFindings
from .backends import Backend
from .devices import job_device, resolve_device, workers_per_device
from .jobs import ConnectionsJob, DatasetJob, Job, ModelRef, Outcome
from .memory import available_bytes, bytes_per_picture, fit_batch
from .plan import Task, batches


@dataclass(frozen=True)
class Tick:
    """Where a stage of work stands: ``done`` of ``total`` (fractions while a batch is
    optimised), in ``unit``; ``steps``: the optimisation steps of each picture (0 for work
    that optimises nothing), over ``batches`` batches."""

    stage: str
    done: float
    total: float
    unit: str = "img"
    steps: int = 0
    batches: int = 1


Progress = Callable[[Tick], None]
Sink = Callable[[Sequence[Outcome]], list[Outcome]]


def cache_sink(cache_root: str) -> Sink:
    """Return a sink that stores what workers sent back (only this process writes the
    cache) and passes the outcomes on without their payloads."""
    cache, findings, analyses = (
        Cache(cache_root),
        FindingsStore(cache_root),
        AnalysisStore(cache_root),
    )

    def store(outcomes: Sequence[Outcome]) -> list[Outcome]:
        for item in (item for o in outcomes for item in o.stored):
            if isinstance(item, LayerFindings):
                findings.put(item)
            elif isinstance(item, Finding):
                analyses.put(item)
            else:
                cache.put_encoded(item)
        return [replace(o, stored=()) for o in outcomes]

    return store


def keep_sink(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """Keep what workers sent back with the outcomes (nothing is stored)."""
    return list(outcomes)


def memory_limit(
    adapter: ModelAdapter, batch_size: int, device_name: str, workers: int = 1
) -> Callable[[Task], int]:
    """Return a function giving the largest batch of a task's kind that fits in memory,
    measured once per layer set and canvas; say so on stderr when it caps batch_size."""
    device = resolve_device(device_name)
    available = available_bytes(device)
    sharing = workers_per_device(job_device(device_name, workers), workers)
    known: dict[tuple, int] = {}

    def limit(task: Task) -> int:
        layers = frozenset(task.objective.layers - {INPUT})
        key = (layers, task.settings.size, task.settings.model_size)
        if key not in known:
            known[key] = _fit(adapter, task, layers, batch_size, device, available, sharing)
        return known[key]

    return limit


def _fit(adapter, task, layers, batch_size, device, available, sharing) -> int:
    """Measure one picture's memory for task's kind and return the batch that fits."""
    settings = task.settings
    try:
        per = bytes_per_picture(adapter, layers, settings.size, device, settings.model_size)
    except Exception:  # a model the measure cannot run: its batches stay as asked
        return batch_size
    fits = fit_batch(batch_size, per, available, sharing)
    if fits < batch_size or device.type == "cuda":
        capped = "capped at" if fits < batch_size else "of"
        sys.stderr.write(
            f"note: batches of {', '.join(sorted(layers)) or 'the picture'} {capped} "
            f"{fits} pictures (batch_size {batch_size}) to fit "
            f"{available / 1e9:.1f} GB of free memory on {device} ({per / 1e6:.0f} MB a picture)\n"
        )
    return fits


def make_jobs(
    tasks: Sequence[Task],
    model: ModelAdapter | ModelRef,
    cache_root: str,
    device: str,
    precision: str,
    batch_size: int,
    limit: Callable[[Task], int] | None = None,
    workers: int = 1,
) -> list[Job]:
    """Split tasks into batches that workers can run (at most what limit says fits)."""
    device = job_device(device, workers)
    return [
        Job(model, tuple(batch), cache_root, device, precision)
        for batch in batches(tasks, batch_size, limit)
    ]


def execute(
    jobs: Sequence[Job | DatasetJob | ConnectionsJob],
    backend: Backend,
    registry: Registry | None,
    sink: Sink,
    progress: Progress | None = None,
    stage: str = "pictures",
    total: float | None = None,
) -> list[Outcome]:
    """Run every job on the backend, store its results through sink and return all
    outcomes; progress hears of the stage's work done (total: pictures, unless given)."""
    total = sum(j.images for j in jobs) if total is None else total
    steps = next((j.steps for j in jobs if isinstance(j, Job)), 0)
    done = 0.0

    def advance(n: float) -> None:
        nonlocal done
        done = min(total, done + n)
        if progress:
            progress(Tick(stage, done, total, steps=steps, batches=len(jobs)))

    def on_step(job: Job | DatasetJob | ConnectionsJob):
        if isinstance(job, (DatasetJob, ConnectionsJob)):
            return advance  # images looked at, or (unit, image) pairs differentiated
        return lambda _step: advance(job.images / job.steps)

    outcomes: list[Outcome] = []
    for finished in backend.run(jobs, registry, on_step):
        outcomes += sink(finished)
        if not backend.reports_steps:
            advance(sum(o.images for o in finished))
    if progress and total:
        progress(Tick(stage, total, total, steps=steps, batches=len(jobs)))  # remote: at the end
    return outcomes
