"""The cost of a build before paying it: a few timed steps of each kind of batch, here."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..engine.objectives import stack
from ..engine.render import render
from ..recipe import RenderSettings
from ..registry import Registry
from ..store.cache import canonical_json
from .devices import resolve_device
from .jobs import Job
from .plan import Task
from .worker import kit

TIMED_STEPS = 3  # after a first step; all of it run twice, the second run timed: the
# first one makes the frozen copy and, per canvas size the transforms draw, the kernels
TIMED_PICTURES = 16  # at most: a dry run of a big model's exhaustive recipe stays quick


@dataclass(frozen=True)
class Estimate:
    """Seconds the optimisation of a build should take on this machine, and how measured."""

    seconds: float
    pictures: int
    kinds: int  # distinct (settings, layers) batches timed
    timed_steps: int
    device: str

    def as_dict(self) -> dict:
        """Return plain data for ``--dry-run --json``."""
        return {
            "seconds": round(self.seconds, 1),
            "pictures": self.pictures,
            "kinds_timed": self.kinds,
            "timed_steps": self.timed_steps,
            "device": self.device,
        }


def _kind(job: Job) -> str:
    """Name what decides a batch's cost per picture: its settings and the layers it reads."""
    task = job.tasks[0]
    layers = sorted(set().union(*(t.objective.layers for t in job.tasks)))
    return canonical_json({"settings": task.settings.as_dict(), "layers": layers})


def seconds_per_picture_step(job: Job, registry: Registry) -> float:
    """Time TIMED_STEPS optimisation steps of (the first TIMED_PICTURES pictures of) the
    job's batch, once warm: the same steps (same seeds, so the same transform draws) are
    run once before."""
    tasks, pictures = [], 0
    for task in job.tasks:
        if tasks and pictures + task.images > TIMED_PICTURES:
            break
        tasks.append(task)
        pictures += task.images
    objective = stack([t.objective for t in tasks], [t.images for t in tasks])
    settings = replace(tasks[0].settings, steps=1 + TIMED_STEPS)
    starts = [_start(t, settings) for t in tasks for _ in t.seeds]
    stamps: list[float] = []
    for _ in range(2):
        stamps.clear()
        render(
            job.model,
            objective,
            [seed for t in tasks for seed in t.seeds],
            settings,
            kit(registry, settings),
            resolve_device(job.device),
            lambda _step: stamps.append(time.perf_counter()),
            job.precision,
            starts,
        )
    return (stamps[-1] - stamps[0]) / TIMED_STEPS / pictures


def _start(task: Task, settings: RenderSettings):
    """Return the image a timed picture starts from: its own, or for an accentuated unit
    whose example the dataset pass has not found yet a grey one (it costs the same)."""
    if task.start is not None or not settings.accentuate:
        return task.start
    h, w = settings.size
    return np.full((h, w, 3), 0.5, np.float32)


def estimate(jobs: Sequence[Job], registry: Registry) -> Estimate:
    """Estimate the seconds the jobs take in this process: per kind of batch, the largest
    batch's timed steps, scaled to every picture and step of that kind."""
    kinds: dict[str, list[Job]] = {}
    for job in jobs:
        kinds.setdefault(_kind(job), []).append(job)
    seconds = 0.0
    for group in kinds.values():
        per = seconds_per_picture_step(max(group, key=lambda j: j.images), registry)
        seconds += per * sum(j.images * j.tasks[0].settings.steps for j in group)
    device = str(resolve_device(jobs[0].device)) if jobs else "none"
    return Estimate(seconds, sum(j.images for j in jobs), len(kinds), TIMED_STEPS, device)
