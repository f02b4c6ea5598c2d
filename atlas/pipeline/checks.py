"""Checks before any work: every name a recipe uses is registered and fits its use, and the
device and precision exist here. Each failure is one line, exit code 4."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..errors import AtlasError, PluginError, RecipeError
from ..models.layers import LayerInfo
from ..recipe import PRECISION_NAMES, Recipe
from ..registry import Registry
from .compose import GRIDLESS
from .devices import resolve_device


def check_plugin_names(recipe: Recipe, registry: Registry) -> None:
    """Fail before any work if the recipe names something no plugin registered (or that a
    plugin registered but does not fit its contract)."""
    where = recipe.where
    wanted: list[tuple[Callable[[str], object], str, str]] = [
        (registry.objective, recipe.objective, "render.objective")
    ]
    for settings, table in [(recipe.render, "render")] + [
        (p.render, f"pictures {p.name!r}: render") for p in recipe.pictures
    ]:
        wanted.append((registry.parameterization, settings.param, f"{table}.param"))
        wanted += [
            (registry.regularizer, n, f"{table}.regularizers.{n}") for n in settings.regularizers
        ]
    for lookup, name, key in wanted:
        try:
            lookup(name)
        except PluginError as exc:
            raise PluginError(f"{where}: key {key!r}: {exc}") from None


def check_per_channel(recipe: Recipe, registry: Registry) -> None:
    """Fail early if the recipe's objective cannot make one picture per channel."""
    if not registry.objective(recipe.objective).channels:
        raise PluginError(
            f"objective {recipe.objective!r} does not take channels, so it cannot make one "
            "picture per channel; use 'channel' or 'neuron' in render.objective"
        )


def check_unit_positions(recipe: Recipe, layers: Sequence[LayerInfo]) -> None:
    """Fail early if each unit's neuron would address a token layer that has no grid."""
    if recipe.objective != "neuron":
        return
    for layer in layers:
        if layer.gridless:
            where = f"{recipe.where}: render.objective 'neuron'"
            raise RecipeError(f"{where}: layer {layer.name!r} {GRIDLESS}")


def check_precision(name: str) -> None:
    """Fail early on a precision the optimiser does not have."""
    if name not in PRECISION_NAMES:
        raise AtlasError(f"unknown precision {name!r}: use one of {', '.join(PRECISION_NAMES)}")


def check_device(name: str) -> None:
    """Fail early on a device this machine does not have."""
    try:
        device = resolve_device(name)
    except RuntimeError as exc:
        raise AtlasError(f"unknown device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AtlasError(
            f"device {name!r} asked for, but torch sees no CUDA device here; "
            "use --device cpu or auto"
        )
