"""The work itself: jobs as plain data, and running one (a batch of pictures or the dataset
pass) wherever it lands, returning encoded results instead of writing them."""

from __future__ import annotations

import functools
import json
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .adapter import ModelAdapter
from .cache import Encoded
from .datasets import load_dataset
from .devices import resolve_device
from .examples import find
from .layers import OUTPUT, forward_layers
from .objectives import stack
from .plan import Task
from .plugins import Registry, load_registry
from .recipe import DatasetSpec
from .render import render
from .weights import digests_in

CURVE_POINTS = 64
RETRY_LR_SCALE = 0.1  # a picture that came out NaN or inf is retried once at this lr factor


@dataclass(frozen=True)
class ModelRef:
    """A model by name, so workers can load it themselves (options as canonical JSON)."""

    source: str
    weights: str | None = None
    options: str = "{}"


@dataclass(frozen=True)
class Job:
    """One batch of tasks with equal settings, as data a worker can receive."""

    model: ModelRef | ModelAdapter
    tasks: tuple[Task, ...]
    cache_root: str
    device: str
    precision: str = "auto"

    @property
    def images(self) -> int:
        """Return how many pictures the job makes."""
        return sum(t.images for t in self.tasks)


@dataclass(frozen=True)
class DatasetJob:
    """The dataset pass over the layers it still lacks, as data a worker can receive."""

    model: ModelRef | ModelAdapter
    spec: DatasetSpec
    base_dir: str | None
    layers: tuple[tuple[str, str], ...]  # (layer, cache key)
    cache_root: str
    device: str
    batch_size: int
    dataset: object | None = None  # the opened data set, for in-process runs

    images = 0  # optimises no pictures


@dataclass(frozen=True)
class Outcome:
    """What became of one task: stored, or failed with an error message."""

    key: str
    name: str
    images: int = 1
    error: str | None = None
    layer: str | None = None
    stored: tuple = field(default=(), repr=False)  # what the client writes to the cache


@functools.lru_cache(maxsize=1)
def _worker_registry() -> Registry:
    """Load the plugins once per worker process."""
    return load_registry()


@functools.lru_cache(maxsize=4)
def _worker_model(ref: ModelRef) -> ModelAdapter:
    """Load a model once per worker process."""
    from .sources import load_model

    # the options carry the client's decision on the input size (fixed_size)
    return load_model(_worker_registry(), ref.source, ref.weights, **json.loads(ref.options))


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc)


def curve_points(values: np.ndarray) -> list[float]:
    """Downsample one image's objective curve to at most CURVE_POINTS values."""
    idx = np.unique(np.linspace(0, len(values) - 1, min(CURVE_POINTS, len(values))).astype(int))
    return [round(float(values[i]), 5) for i in idx]


def _predicted_shares(
    adapter: ModelAdapter, tasks: Sequence[Task], images: np.ndarray, device: torch.device
) -> list[float | None]:
    """For pictures of a class channel of a per-pixel output (segmentation), return the
    share of their pixels the model predicts as that class; None for the others."""
    rows = [
        (t.meta.get("layer") == OUTPUT and t.meta.get("channel") is not None, t.meta.get("channel"))
        for t in tasks
        for _ in t.keys
    ]
    if not any(wanted for wanted, _ in rows):
        return [None] * len(rows)
    pictures = torch.from_numpy(images).permute(0, 3, 1, 2).to(device)
    adapter.module.to(device)  # the optimiser may have run a copy, leaving this one elsewhere
    if pictures.shape[1] > adapter.input.channels:  # alpha: as seen over mid-grey
        colour, alpha = pictures[:, :-1], pictures[:, -1:]
        pictures = colour * alpha + 0.5 * (1 - alpha)
    with torch.no_grad():
        out = forward_layers(adapter, adapter.input.normalize(pictures), [OUTPUT])[OUTPUT]
    if out.dim() != 4:
        return [None] * len(rows)
    predicted = out.argmax(1)
    return [
        round(float((predicted[i] == channel).float().mean()), 4) if wanted else None
        for i, (wanted, channel) in enumerate(rows)
    ]


def _encode(
    tasks: Sequence[Task], result, seconds: float, shares: Sequence, lr_scale: float = 1.0
) -> list[Encoded]:
    """Encode each image of a rendered batch with its numbers, ready for the cache."""
    encoded = []
    row = 0
    for task in tasks:
        for key in task.keys:
            meta = {
                "predicted_share": shares[row],
                **task.meta,
                "name": task.name,
                "objective_final": float(result.final[row]),
                "curve": curve_points(result.curve[:, row]),
                "steps": task.settings.steps,
                "seconds": round(seconds / len(result.final), 4),
                "spec": task.spec,
            }
            if lr_scale != 1.0:
                meta["retried_with_lr_scale"] = lr_scale
            encoded.append(Encoded.of(key, result.images[row], meta, task.settings.alpha))
            row += 1
    return encoded


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
            registry,
            resolve_device(job.device),
            on_step,
            job.precision,
        )
    except Exception as exc:
        if _is_oom(exc) and len(tasks) > 1:
            torch.cuda.empty_cache()
            half = len(tasks) // 2
            return _render_tasks(
                job, tasks[:half], registry, adapter, None, lr_scale
            ) + _render_tasks(job, tasks[half:], registry, adapter, None, lr_scale)
        raise
    good, kept, bad = _split_finite(tasks, result)
    outcomes = []
    if good:
        shares = _predicted_shares(adapter, good, kept.images, resolve_device(job.device))
        encoded = _encode(good, kept, time.perf_counter() - start, shares, lr_scale)
        by_key = {item.key: item for item in encoded}
        outcomes += [_outcome(t, stored=tuple(by_key[k] for k in t.keys)) for t in good]
    if bad and lr_scale == 1.0:
        outcomes += _render_tasks(job, bad, registry, adapter, None, lr_scale=RETRY_LR_SCALE)
    elif bad:
        lr = settings.lr
        reason = f"the optimisation produced NaN or inf, also when retried with lr {lr:g}"
        outcomes += [_outcome(t, reason) for t in bad]
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


def _outcome(task: Task, error: str | None = None, stored: tuple = ()) -> Outcome:
    return Outcome(task.key, task.name, task.images, error, task.meta.get("layer"), stored)


def run_dataset_job(
    job: DatasetJob, registry: Registry, adapter: ModelAdapter, on_step=None
) -> list[Outcome]:
    """Run the dataset pass over the job's layers and store each layer's findings."""
    dataset = job.dataset
    if dataset is None:
        base_dir = Path(job.base_dir) if job.base_dir else None
        options = dict(job.spec.options)
        dataset = load_dataset(
            registry, job.spec.source, base_dir=base_dir, channels=adapter.input.channels, **options
        )
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
    )
    return [Outcome("dataset", "dataset pass", 0, None, stored=tuple(findings))]


def run_job(
    job: Job | DatasetJob,
    registry: Registry | None = None,
    on_step: Callable[[int], None] | None = None,
) -> list[Outcome]:
    """Run one job (a batch of tasks, or the dataset pass) and store its results; report
    failures instead of raising."""
    try:
        registry = registry or _worker_registry()
        adapter = job.model
        if not isinstance(adapter, ModelAdapter):
            with digests_in(job.cache_root):
                adapter = _worker_model(job.model)
        if isinstance(job, DatasetJob):
            return run_dataset_job(job, registry, adapter, on_step)
        return _render_tasks(job, job.tasks, registry, adapter, on_step)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        if os.environ.get("ATLAS_DEBUG"):
            message += "\n" + traceback.format_exc()
        return failed(job, message)


def first_line(exc: BaseException) -> str:
    """Return the first line of an exception's message (or its type's name)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def failed(job: Job | DatasetJob, message: str) -> list[Outcome]:
    """Return the outcomes of a job none of whose work came back."""
    if isinstance(job, DatasetJob):
        return [Outcome("dataset", "dataset pass", 0, message)]
    return [_outcome(t, message) for t in job.tasks]
