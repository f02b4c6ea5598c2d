"""Connections in a build: which pairs of selected layers are computed and under what cache
keys (planned with the rest, checked before any work), the job that computes the missing
ones after the dataset pass, and each unit's strongest inputs and outputs in the manifest."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..datasets.connections import DATA, WEIGHTS, NoPath, check_path, normalised, strongest
from ..errors import RecipeError
from ..models.adapter import ModelAdapter
from ..models.layers import LayerInfo
from ..recipe import ConnectionSettings, Recipe
from ..store.cache import Cache
from ..store.findings import AnalysisStore, Finding, analysis_key

NAME = "connections"  # the analysis store's folder for them
VERSION = "1"


@dataclass(frozen=True)
class Pair:
    """One computed connection: layer L built from source P, by a method, under a key."""

    layer: str
    source: str
    method: str
    key: str


@dataclass
class ConnectionsPlan:
    """The pairs a build connects, and which the cache holds."""

    settings: ConnectionSettings
    pairs: list[Pair] = field(default_factory=list)
    cached: set[str] = field(default_factory=set)  # keys

    @property
    def missing(self) -> list[Pair]:
        """Return the pairs still to compute."""
        return [p for p in self.pairs if p.key not in self.cached]

    def summary(self) -> dict:
        """Return plain data for ``--dry-run --json``."""
        return {
            "method": self.settings.method,
            "top": self.settings.top,
            "pairs": [
                {"layer": p.layer, "from": p.source, "cached": p.key in self.cached}
                for p in self.pairs
            ],
        }


def _sources(settings: ConnectionSettings, layers: Sequence[LayerInfo], where: str) -> list:
    """Return (layer, source) for every selected layer that has one: the recipe's choice,
    else the nearest selected layer before it."""
    order = {layer.name: i for i, layer in enumerate(layers)}
    chosen = dict(settings.sources)
    for layer, source in chosen.items():
        for name in (layer, source):
            if name not in order:
                raise RecipeError(
                    f"{where}: connections.from names {name!r}, which is not a selected layer "
                    f"(selected: {', '.join(order)}); its units would have no pages"
                )
        if order[source] >= order[layer]:
            raise RecipeError(
                f"{where}: connections.from: {layer!r} comes before {source!r} in the forward "
                f"pass; a layer is built from an earlier one (from = {{{source} = '{layer}'}}?)"
            )
    pairs = []
    for i, layer in enumerate(layers):
        source = chosen.get(layer.name) or (layers[i - 1].name if i else None)
        if source is not None:
            pairs.append((layer.name, source))
    return pairs


def plan_connections(
    recipe: Recipe, adapter: ModelAdapter, layers: Sequence[LayerInfo], cache: Cache, data
) -> ConnectionsPlan | None:
    """Check and key the recipe's connections (data: the dataset plan's data, or None)."""
    settings = recipe.connections
    if settings is None:
        return None
    where = recipe.where
    if settings.method == DATA and recipe.dataset is None:
        raise RecipeError(
            f"{where}: connections.method = 'data' needs a [dataset] to take examples from "
            "(or method = 'weights', which needs none)"
        )
    planned, store = ConnectionsPlan(settings), AnalysisStore(cache.root)
    for layer, source in _sources(settings, layers, where):
        _check(adapter, source, layer, settings.method, where)
        about = {"name": NAME, "source": source, "method": settings.method}
        key = analysis_key(
            adapter.identity(),
            adapter.input.as_dict(),
            data if settings.method == DATA else None,
            layer,
            about,
            VERSION,
        )
        planned.pairs.append(Pair(layer, source, settings.method, key))
        if store.get(NAME, key) is not None:
            planned.cached.add(key)
    return planned


def _check(adapter: ModelAdapter, source: str, layer: str, method: str, where: str) -> None:
    """Refuse a pair with no path; say which non-linearities the weights method keeps."""
    try:
        kept = check_path(adapter, source, layer, method)
    except NoPath:
        raise RecipeError(
            f"{where}: connections: no path from {source!r} to {layer!r} in the forward "
            "pass; choose another with connections.from"
        ) from None
    if kept and method == WEIGHTS:
        sys.stderr.write(
            f"note: connections {source} -> {layer}: functional non-linearities on the path "
            f"({', '.join(kept)}) cannot be made linear; the expanded weights include them\n"
        )


def top_examples(found: Mapping | None, units: int) -> np.ndarray:
    """Return each unit's top example images from a layer's findings, (units, k), -1 where
    there is none."""
    if found is None:
        return np.full((units, 0), -1)
    k = max((len(u["examples"]) for u in found["units"]), default=0)
    out = np.full((units, k), -1, np.int64)
    for unit in found["units"][:units]:
        for rank, example in enumerate(unit["examples"]):
            out[unit["channel"], rank] = example["index"]
    return out


def connection_findings(plan: ConnectionsPlan | None, cache: Cache) -> dict[str, Finding]:
    """Return each computed pair's finding by layer."""
    if plan is None:
        return {}
    store = AnalysisStore(cache.root)
    found = {p.layer: store.get(NAME, p.key) for p in plan.pairs}
    return {layer: f for layer, f in found.items() if f is not None}


@dataclass(frozen=True)
class Wiring:
    """Each unit's strongest inputs and outputs, by (layer, channel)."""

    inputs: dict[tuple[str, int], list[dict]]
    outputs: dict[tuple[str, int], list[dict]]


def wiring(findings: Mapping[str, Finding], top: int, units: Mapping[str, int]) -> Wiring:
    """Cut each unit's lists from the full matrices (rows normalised so the strongest input
    is ±1): its top excitatory and inhibitory inputs, and the units of the next layer it
    feeds most (units: how many of each layer's units the atlas shows)."""
    inputs: dict = {}
    outputs: dict = {}
    for layer, finding in findings.items():
        source = finding.meta["source"]
        matrix = normalised(finding.arrays["weights"])[: units.get(layer, 0)]
        matrix = matrix[:, : units.get(source, 0)]
        for u, row in enumerate(matrix):
            inputs[(layer, u)] = [
                {"layer": source, "channel": p, "weight": round(w, 4)}
                for p, w in strongest(row, top)
            ]
        for p, column in enumerate(matrix.T):
            outputs.setdefault((source, p), []).extend(  # a layer may feed several
                {"layer": layer, "channel": u, "weight": round(w, 4)}
                for u, w in strongest(column, top)
            )
    return Wiring(inputs, outputs)
