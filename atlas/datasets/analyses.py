"""Analyses of the dataset pass: what else a build computes from the images the pass reads.

An analysis subscribes to the pass: for each layer it sees every batch's activations with
the images' indices and labels (once, or in several passes over the same samples, as
Network Dissection's thresholds then masks need), and returns one finding per layer: plain
data and arrays, stored under a cache key of its own, so adding an analysis to a recipe never
recomputes the dataset examples, and changing one recomputes only it.

The built-in analyses load by dotted name (``BUILT_IN``); ``ANALYSES`` takes more (tests).
A recipe's planning asks each whether it applies (``wants``), and workers rebuild them from
their name and settings (plain data).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..recipe.settings import DatasetSpec
from .labels import Labels

BUILT_IN = ("atlas.datasets.concepts:Concepts", "atlas.datasets.sampling:MapSamples")


@dataclass(frozen=True)
class AnalysisSpec:
    """An analysis a build runs, as plain data a worker can receive."""

    name: str
    settings: tuple[tuple[str, object], ...] = ()

    def as_dict(self) -> dict:
        """Return plain data for cache keys."""
        return {"name": self.name, "settings": dict(self.settings)}


class Analysis:
    """Base of an analysis: override ``wants``, ``update`` and ``result``; ``passes`` says
    how many times it reads the samples (the pass index goes to ``update``), ``pass_names``
    what each pass is for (shown in the progress bar and the dry run)."""

    name = "analysis"
    version = "1"
    passes = 1
    pass_names: tuple[str, ...] = ()
    needs_derivative = False  # True: update() also gets derivatives=, the batch's
    # OutputDerivatives (the output's derivatives with respect to the layer)

    def __init__(self, **settings: object):
        self.settings = settings
        self.begun: set[str] = set()  # layers begin() was called for

    @classmethod
    def wants(cls, spec: DatasetSpec, labels: Labels) -> dict | None:
        """Return the settings to run with on a recipe's data set, or None to stay out."""
        return None

    def describe(self) -> str:
        """Say in a few words what the analysis computes (for the dry run)."""
        return self.name

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


# name -> an analysis class besides the built-in ones (tests subscribe theirs here)
ANALYSES: dict[str, type[Analysis]] = {}


def registered() -> dict[str, type[Analysis]]:
    """Return every analysis class by name: the built-in ones, then ANALYSES."""
    found: dict[str, type[Analysis]] = {}
    for path in BUILT_IN:
        module, attribute = path.split(":")
        cls = getattr(importlib.import_module(module), attribute)
        found[cls.name] = cls
    return {**found, **ANALYSES}


def wanted(spec: DatasetSpec, labels: Labels) -> list[AnalysisSpec]:
    """Return the analyses a recipe's ``[dataset]`` asks for on its data set, by name."""
    specs = []
    for name, cls in sorted(registered().items()):
        settings = cls.wants(spec, labels)
        if settings is not None:
            specs.append(AnalysisSpec(name, tuple(sorted(settings.items()))))
    return specs


def make(spec: AnalysisSpec) -> Analysis:
    """Build the analysis a spec names (in a worker too)."""
    return registered()[spec.name](**dict(spec.settings))


def passes(spec: AnalysisSpec) -> int:
    """Return how many times the analysis a spec names reads the samples."""
    return make(spec).passes
