"""Running one job wherever it lands (this process, a loky or Dask worker): load the model
and plugins once per process, render with out-of-memory halving and a NaN retry, and
return encoded results instead of writing them."""

from __future__ import annotations

import copy
import functools
import json
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..datasets.connections import DATA, attributions, expanded_weights
from ..datasets.examples import find
from ..engine.objectives import stack
from ..engine.render import Kit, render
from ..models.adapter import ModelAdapter
from ..models.weights import digests_in
from ..recipe.settings import RenderSettings
from ..registry import Registry, load_registry
from ..store.findings import Finding
from .devices import resolve_device
from .jobs import ConnectionsJob, DatasetJob, Job, Outcome, PairJob, failed, outcome
from .plan import Task
from .results import encode, predicted_shares
from .settle import settle

RETRY_LR_SCALE = 0.1  # a picture that came out NaN or inf is retried once at this lr factor


@functools.lru_cache(maxsize=1)
def _worker_registry() -> Registry:
    """Load the plugins once per worker process."""
    return load_registry()


@functools.lru_cache(maxsize=4)
def _worker_model(ref) -> ModelAdapter:
    """Load a model once per worker process."""
    # the options carry the client's decision on the input size (fixed_size)
    return _worker_registry().load_model(ref.source, ref.weights, **json.loads(ref.options))


def kit(registry: Registry, settings: RenderSettings) -> Kit:
    """Resolve the factories a batch's settings name, for the engine."""
    return Kit(
        registry.parameterization(settings.param).make,
        {name: registry.regularizer(name) for name in settings.regularizers},
    )


def render_batch(
    adapter: ModelAdapter,
    objective,
    seeds: Sequence[int],
    settings: RenderSettings,
    registry: Registry,
    device: torch.device | str = "cpu",
    on_step: Callable[[int], None] | None = None,
    precision: str = "auto",
):
    """Render one batch as a build would: settings settled against the model and registry,
    the factories they name resolved; returns the engine's RenderResult."""
    settings = settle(settings, adapter, registry, "")
    return render(
        adapter, objective, seeds, settings, kit(registry, settings), device, on_step, precision
    )


def is_oom(exc: BaseException) -> bool:
    """Return True for a device running out of memory."""
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc)


def _render_tasks(
    job: Job,
    tasks: Sequence[Task],
    registry: Registry,
    adapter: ModelAdapter,
    on_step: Callable[[int], None] | None,
    lr_scale: float = 1.0,
) -> list[Outcome]:
    """Render tasks, halving the batch when the device runs out of memory and retrying
    tasks whose pictures came out NaN or infinite once with a tenth of the learning rate."""
    objective = stack([t.objective for t in tasks], [t.images for t in tasks])
    settings = tasks[0].settings
    if lr_scale != 1.0:
        settings = replace(settings, lr=settings.lr * lr_scale)
    start = time.perf_counter()
    try:
        result = render(
            adapter,
            objective,
            [seed for t in tasks for seed in t.seeds],
            settings,
            kit(registry, settings),
            resolve_device(job.device),
            on_step,
            job.precision,
            [t.start for t in tasks for _ in range(t.images)],
        )
    except Exception as exc:
        if is_oom(exc) and len(tasks) > 1:
            torch.cuda.empty_cache()
            half = len(tasks) // 2
            return _render_tasks(
                job, tasks[:half], registry, adapter, None, lr_scale
            ) + _render_tasks(job, tasks[half:], registry, adapter, None, lr_scale)
        raise
    good, kept, bad = _split_finite(tasks, result)
    outcomes = []
    if good:
        shares = predicted_shares(adapter, good, kept.images, resolve_device(job.device))
        encoded = encode(good, kept, time.perf_counter() - start, shares, lr_scale)
        by_key = {item.key: item for item in encoded}
        outcomes += [outcome(t, stored=tuple(by_key[k] for k in t.keys)) for t in good]
    if bad and lr_scale == 1.0:
        outcomes += _render_tasks(job, bad, registry, adapter, None, lr_scale=RETRY_LR_SCALE)
    elif bad:
        lr = settings.lr
        reason = f"the optimisation produced NaN or inf, also when retried with lr {lr:g}"
        outcomes += [outcome(t, reason) for t in bad]
    return outcomes


def _split_finite(tasks: Sequence[Task], result) -> tuple[list[Task], object, list[Task]]:
    """Split tasks into those whose pictures and values are all finite (with their rows of
    the result) and those that came out NaN or infinite."""
    n = len(result.final)
    finite = np.isfinite(result.images.reshape(n, -1)).all(1) & np.isfinite(result.final)
    finite &= np.isfinite(result.curve).all(0)
    ends = np.cumsum([t.images for t in tasks])
    spans = [range(end - t.images, end) for t, end in zip(tasks, ends, strict=True)]
    good = [(t, span) for t, span in zip(tasks, spans, strict=True) if finite[span].all()]
    rows = [row for _, span in good for row in span]
    kept = replace(
        result, images=result.images[rows], final=result.final[rows], curve=result.curve[:, rows]
    )
    good_tasks = [t for t, _ in good]
    return good_tasks, kept, [t for t in tasks if t not in good_tasks]


def run_dataset_job(
    job: DatasetJob, registry: Registry, adapter: ModelAdapter, on_step=None
) -> list[Outcome]:
    """Run the dataset pass over the job's layers and store each layer's findings."""
    dataset = _dataset(job, registry, adapter)
    spec = job.spec
    findings = find(
        adapter,
        dataset,
        dict(job.layers),
        spec.samples,
        spec.top_k,
        spec.seed,
        job.batch_size,
        resolve_device(job.device),
        on_step,
        [(spec, dict(pairs)) for spec, pairs in job.analyses],
    )
    return [Outcome("dataset", "dataset pass", 0, None, stored=tuple(findings))]


def _dataset(job: DatasetJob | ConnectionsJob, registry: Registry, adapter: ModelAdapter):
    """Return the job's data set: the one it carries, else opened from its spec."""
    if job.dataset is not None or job.spec is None:
        return job.dataset
    base_dir = Path(job.base_dir) if job.base_dir else None
    options = dict(job.spec.options)
    return registry.load_dataset(
        job.spec.source, base_dir=base_dir, channels=adapter.input.channels, **options
    )


def _connect(pair: PairJob, adapter: ModelAdapter, dataset, batch: int, device, on_step):
    """Return one connection's full (units, source channels) matrix."""
    if pair.method == DATA:
        examples = np.asarray(pair.examples, np.int64).reshape(pair.units, -1)
        found = (pair.source, pair.layer, examples, batch, device, on_step)
        return attributions(adapter, dataset, *found)
    matrix = expanded_weights(adapter, pair.source, pair.layer, pair.units, batch, device)
    if on_step:
        on_step(pair.work)
    return matrix


def run_connections_job(
    job: ConnectionsJob, registry: Registry, adapter: ModelAdapter, on_step=None
) -> list[Outcome]:
    """Compute each missing connection's full matrix and send it back as a finding."""
    dataset = _dataset(job, registry, adapter)
    device = resolve_device(job.device)
    outcomes = []
    for pair in job.pairs:
        start = time.perf_counter()
        matrix = _connect(pair, adapter, dataset, job.batch_size, device, on_step)
        meta = {
            "layer": pair.layer,
            "source": pair.source,
            "method": pair.method,
            "seconds": round(time.perf_counter() - start, 3),
        }
        arrays = {"weights": matrix}
        found = Finding(pair.key, "connections", pair.layer, meta, arrays, adapter.identity())
        name = f"connections {pair.source} -> {pair.layer}"
        outcomes.append(Outcome(pair.key, name, 0, stored=(found,)))
    return outcomes


def run_job(
    job: Job | DatasetJob | ConnectionsJob,
    registry: Registry | None = None,
    on_step: Callable[[int], None] | None = None,
) -> list[Outcome]:
    """Run one job (a batch of tasks, or the dataset pass) and return its encoded results;
    report failures instead of raising."""
    try:
        registry = registry or _worker_registry()
        adapter = job.model
        if not isinstance(adapter, ModelAdapter):
            with digests_in(job.cache_root):
                adapter = _worker_model(job.model)
        if isinstance(job, DatasetJob):
            return run_dataset_job(job, registry, adapter, on_step)
        if isinstance(job, ConnectionsJob):
            return run_connections_job(job, registry, adapter, on_step)
        return _render_tasks(job, job.tasks, registry, adapter, on_step)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        if os.environ.get("ATLAS_DEBUG"):
            message += "\n" + traceback.format_exc()
        return failed(job, message)


def run_on_worker(
    job: Job | DatasetJob | ConnectionsJob, threads: int | None, registry: Registry | None
):
    """Run one job in a worker (a process, a thread, or a Dask worker)."""
    if threads:
        torch.set_num_threads(threads)
    if isinstance(job.model, ModelAdapter):  # hooks and patched ReLUs are per module
        job = replace(job, model=copy.deepcopy(job.model))
    return run_job(job, registry)
