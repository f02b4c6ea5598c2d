"""Analyses of the dataset pass: what else a build computes from the images the pass reads.

An analysis subscribes to the pass: for each layer it sees every batch's activations with
the images' indices and labels (once, or in several passes over the same samples, as
Network Dissection's thresholds then masks need), and returns one finding per layer: plain
data and arrays, stored under a cache key of its own, so adding an analysis to a recipe never
recomputes the dataset examples, and changing one recomputes only it.

Analyses are found by name in ``ANALYSES``; a recipe's planning asks each whether it applies
(``wanted``), and workers rebuild them from their name and settings (plain data).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class AnalysisSpec:
    """An analysis a build runs, as plain data a worker can receive."""

    name: str
    settings: tuple[tuple[str, object], ...] = ()

    def as_dict(self) -> dict:
        """Return plain data for cache keys."""
        return {"name": self.name, "settings": dict(self.settings)}


class Analysis:
    """Base of an analysis: override ``update`` and ``result``; ``passes`` says how many
    times it reads the samples (the pass index goes to ``update``)."""

    name = "analysis"
    version = "1"
    passes = 1

    def __init__(self, **settings: object):
        self.settings = settings
        self.begun: set[str] = set()  # layers begin() was called for

    def begin(self, layer: str, channels: int, samples: int) -> None:
        """Prepare to see layer's activations (channels units, samples images)."""

    def update(
        self,
        layer: str,
        act: torch.Tensor,
        indices: np.ndarray,
        labels: Sequence[object],
        pass_index: int,
    ) -> None:
        """See one batch of layer's activations (float32, as the model gives them)."""
        raise NotImplementedError

    def result(self, layer: str) -> tuple[dict, dict[str, np.ndarray]]:
        """Return layer's finding: plain data and named arrays."""
        raise NotImplementedError


# name -> (the analysis class, whether a recipe's dataset spec wants it and with what
# settings: None for no). Empty today: the examples are the pass's own result; concept
# scores, connections and activation maps subscribe here.
ANALYSES: dict[str, tuple[type[Analysis], Callable[[object], dict | None]]] = {}


def wanted(dataset_spec: object) -> list[AnalysisSpec]:
    """Return the analyses a recipe's ``[dataset]`` asks for, in name order."""
    specs = []
    for name, (_, wants) in sorted(ANALYSES.items()):
        settings = wants(dataset_spec)
        if settings is not None:
            specs.append(AnalysisSpec(name, tuple(sorted(settings.items()))))
    return specs


def passes(spec: AnalysisSpec) -> int:
    """Return how many times the analysis a spec names reads the samples."""
    return ANALYSES[spec.name][0].passes


def make(spec: AnalysisSpec) -> Analysis:
    """Build the analysis a spec names (in a worker too)."""
    cls, _ = ANALYSES[spec.name]
    return cls(**dict(spec.settings))
