"""Hook specifications: each hook receives a ``register`` callable typed with the contract."""

from __future__ import annotations

from typing import Protocol

import pluggy

from .contracts import (
    DatasetSource,
    ModelSource,
    ObjectiveFactory,
    Parameterization,
    RegularizerFactory,
)

PROJECT = "feature_atlas"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class RegisterModels(Protocol):
    def __call__(self, namespace: str, source: ModelSource) -> None: ...


class RegisterObjectives(Protocol):
    def __call__(self, name: str, factory: ObjectiveFactory, *, channels: bool = False) -> None: ...


class RegisterRegularizers(Protocol):
    def __call__(self, name: str, factory: RegularizerFactory) -> None: ...


class RegisterParameterizations(Protocol):
    def __call__(self, name: str, parameterization: Parameterization) -> None: ...


class RegisterDatasets(Protocol):
    def __call__(self, namespace: str, source: DatasetSource) -> None: ...


@hookspec
def feature_atlas_register_models(register: RegisterModels) -> None:
    """Register model sources: ``register(namespace, ModelSource(load=..., names=...))``."""


@hookspec
def feature_atlas_register_objectives(register: RegisterObjectives) -> None:
    """Register objective factories: ``register(name, factory, channels=...)``."""


@hookspec
def feature_atlas_register_regularizers(register: RegisterRegularizers) -> None:
    """Register regularizer factories: ``register(name, factory)``."""


@hookspec
def feature_atlas_register_parameterizations(register: RegisterParameterizations) -> None:
    """Register image parameterizations: ``register(name, Parameterization(make=...))``."""


@hookspec
def feature_atlas_register_datasets(register: RegisterDatasets) -> None:
    """Register image sources for dataset examples: ``register(namespace, DatasetSource(...))``."""
