"""Plan the work of a build: one unit per (layer, channel), each with a canonical spec."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from .adapter import ModelAdapter
from .cache import Cache, digest
from .layers import LayerInfo
from .recipe import Recipe


@dataclass(frozen=True)
class Unit:
    """One picture to make: a channel of a layer, its cache key and its seed."""

    layer: str
    channel: int
    label: str | None
    key: str
    seed: int
    spec: dict = field(repr=False, compare=False)


@dataclass
class Plan:
    """The selected layers and every unit of the build, with what the cache holds."""

    recipe: Recipe
    adapter: ModelAdapter
    layers: list[LayerInfo]
    units: list[Unit]
    cached: set[str] = field(default_factory=set)

    @property
    def missing(self) -> list[Unit]:
        """Return the units the cache does not hold."""
        return [u for u in self.units if u.key not in self.cached]

    def summary(self) -> dict:
        """Return plain data for ``atlas build --dry-run --json``."""
        per_layer = []
        for layer in self.layers:
            units = [u for u in self.units if u.layer == layer.name]
            cached = sum(u.key in self.cached for u in units)
            per_layer.append(
                {
                    **layer.as_dict(),
                    "units": len(units),
                    "cached": cached,
                    "to_compute": len(units) - cached,
                }
            )
        return {
            "recipe": str(self.recipe.path) if self.recipe.path else self.recipe.name,
            "model": self.adapter.source,
            "weights_digest": self.adapter.weights_digest,
            "layers": per_layer,
            "units_total": len(self.units),
            "units_cached": len(self.cached),
            "units_to_compute": len(self.units) - len(self.cached),
        }


def unit_spec(recipe: Recipe, adapter: ModelAdapter, layer: str, channel: int) -> dict:
    """Return the plain data that decides one unit's picture (its cache key's content)."""
    return {
        "model": adapter.identity(),
        "input": adapter.input.as_dict(),
        "objective": {"name": recipe.objective, "layer": layer, "channel": channel},
        "render": recipe.render.as_dict(),
        "seed": recipe.seed,
    }


def unit_seed(spec: dict) -> int:
    """Derive a unit's RNG seed from the recipe seed and its objective alone."""
    return int(digest({"seed": spec["seed"], "objective": spec["objective"]})[:15], 16)


def make_plan(
    recipe: Recipe, adapter: ModelAdapter, layers: Sequence[LayerInfo], cache: Cache
) -> Plan:
    """List every unit of the selected layers and look each up in the cache."""
    units = []
    for layer in layers:
        labels = adapter.labels.get(layer.name, ())
        for c in range(min(layer.channels, recipe.max_channels or layer.channels)):
            spec = unit_spec(recipe, adapter, layer.name, c)
            label = labels[c] if c < len(labels) else None
            units.append(Unit(layer.name, c, label, digest(spec), unit_seed(spec), spec))
    cached = {u.key for u in units if cache.get(u.key) is not None}
    return Plan(recipe, adapter, list(layers), units, cached)


def batches(units: Sequence[Unit], size: int) -> Iterator[list[Unit]]:
    """Group units by layer into batches of at most size."""
    by_layer: dict[str, list[Unit]] = {}
    for unit in units:
        by_layer.setdefault(unit.layer, []).append(unit)
    for group in by_layer.values():
        for start in range(0, len(group), size):
            yield group[start : start + size]
