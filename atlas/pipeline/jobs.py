"""Jobs as plain data a worker can receive, and the outcomes it sends back."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..datasets.analyses import AnalysisSpec
from ..models.adapter import ModelAdapter
from ..recipe.settings import DatasetSpec
from .plan import Task


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

    @property
    def steps(self) -> int:
        """Return the optimisation steps of each of the job's pictures."""
        return self.tasks[0].settings.steps


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
    # each analysis the pass feeds, with the (layer, cache key) pairs it still lacks
    analyses: tuple[tuple[AnalysisSpec, tuple[tuple[str, str], ...]], ...] = ()

    images = 0  # optimises no pictures


@dataclass(frozen=True)
class PairJob:
    """One connection to compute: layer from source, by method, stored under key; for the
    data method, each unit's top example images ((units, k) as nested tuples, -1: none)."""

    layer: str
    source: str
    method: str
    key: str
    units: int
    examples: tuple[tuple[int, ...], ...] = ()

    @property
    def work(self) -> int:
        """Return the (unit, image) pairs the method differentiates."""
        return sum(i >= 0 for row in self.examples for i in row) or self.units


@dataclass(frozen=True)
class ConnectionsJob:
    """The connections a build still lacks, as data a worker can receive."""

    model: ModelRef | ModelAdapter
    pairs: tuple[PairJob, ...]
    spec: DatasetSpec | None
    base_dir: str | None
    cache_root: str
    device: str
    batch_size: int
    dataset: object | None = None  # the opened data set, for in-process runs

    images = 0  # optimises no pictures

    @property
    def work(self) -> int:
        """Return the (unit, image) pairs of all the job's connections."""
        return sum(p.work for p in self.pairs)


@dataclass(frozen=True)
class Outcome:
    """What became of one task: stored, or failed with an error message."""

    key: str
    name: str
    images: int = 1
    error: str | None = None
    layer: str | None = None
    stored: tuple = field(default=(), repr=False)  # what the client writes to the cache


def first_line(exc: BaseException) -> str:
    """Return the first line of an exception's message (or its type's name)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def outcome(task: Task, error: str | None = None, stored: tuple = ()) -> Outcome:
    """Return the outcome of one task."""
    return Outcome(task.key, task.name, task.images, error, task.meta.get("layer"), stored)


def failed(job: Job | DatasetJob | ConnectionsJob, message: str) -> list[Outcome]:
    """Return the outcomes of a job none of whose work came back."""
    if isinstance(job, DatasetJob):
        return [Outcome("dataset", "dataset pass", 0, message)]
    if isinstance(job, ConnectionsJob):
        return [
            Outcome(p.key, f"connections {p.source} -> {p.layer}", 0, message) for p in job.pairs
        ]
    return [outcome(t, message) for t in job.tasks]
