"""Hook specifications: each hook receives a ``register`` callable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "feature_atlas"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[str, Any], None]


@hookspec
def feature_atlas_register_models(register: Register) -> None:
    """Register model sources: ``register(namespace, ModelSource(...))``."""


@hookspec
def feature_atlas_register_objectives(register: Register) -> None:
    """Register objective factories: ``register(name, factory)``."""


@hookspec
def feature_atlas_register_regularizers(register: Register) -> None:
    """Register regularizer factories: ``register(name, factory)``."""


@hookspec
def feature_atlas_register_parameterizations(register: Register) -> None:
    """Register image parameterizations: ``register(name, factory)``."""


@hookspec
def feature_atlas_register_datasets(register: Register) -> None:
    """Register image sources for dataset examples: ``register(namespace, DatasetSource(...))``."""
