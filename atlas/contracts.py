"""The plugin contract: what each hook registers, as records and Protocols.

Torch-free (the value types are named for type checkers only), so the registry can check a
registration without importing what it registers. Plugin authors import these through
``atlas.plugin``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # value types, for annotations only
    import numpy as np
    import torch

    from .engine.objectives import Objective
    from .engine.params import ImageParam
    from .engine.regularizers import Penalty
    from .models.adapter import ModelAdapter


class ObjectiveFactory(Protocol):
    """Build an Objective from a call's arguments; a per-channel one takes (layer, channel)."""

    def __call__(self, *args: object, **kwargs: object) -> Objective: ...


class RegularizerFactory(Protocol):
    """Build a penalty: a function of an NCHW picture in [0, 1] giving one value per image."""

    def __call__(self, *args: object, **kwargs: object) -> Penalty: ...


class ParamFactory(Protocol):
    """Build a batch of learnable images: ``make(shape, generators, decorrelate=..., **opts)``."""

    def __call__(
        self,
        shape: tuple[int, int, int, int],
        generators: Sequence[torch.Generator],
        decorrelate: bool = True,
        **options: object,
    ) -> ImageParam: ...


class ModelLookup(Protocol):
    """What a model loader may use to load another model (``file:`` with ``arch``)."""

    def load_model(
        self, source: str, weights: str | None = None, **options: object
    ) -> ModelAdapter:
        """Return the adapter of a model source string."""


class ModelLoader(Protocol):
    """Load one model of a namespace: ``load(name, weights=..., registry=..., **options)``."""

    def __call__(
        self, name: str, weights: str | None = None, registry: ModelLookup | None = None, **options
    ) -> ModelAdapter: ...


class Dataset(Protocol):
    """Images by index: ``dataset[i]`` is (image, label); image (H, W, C) uint8 or float in
    [0, 1], label None, a class index or a per-pixel label map (255: void). ``identity`` is
    plain data that changes whenever the images do (part of cache keys). A data set with
    labels may name them: ``classes``, a sequence of names indexed by label value."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[np.ndarray | None, object]: ...

    def identity(self) -> dict: ...


class DatasetLoader(Protocol):
    """Open one data set of a namespace: ``load(name, base_dir=..., channels=..., **options)``."""

    def __call__(self, name: str, **options: object) -> Dataset: ...


def _no_names() -> Iterable[str]:
    return ()


@dataclass(frozen=True)
class ModelSource:
    """A namespace of models: ``load`` gives an adapter; ``names`` lists what it has."""

    load: ModelLoader
    names: Callable[[], Iterable[str]] = field(default=_no_names)


@dataclass(frozen=True)
class DatasetSource:
    """A namespace of data sets: ``load(name, **options)`` returns a Dataset."""

    load: DatasetLoader
    names: Callable[[], Iterable[str]] = field(default=_no_names)


OPTION_TYPES = (bool, int, float, str)


@dataclass(frozen=True)
class Option:
    """One recipe option of a parameterization (a key of ``[render]``): its name, type and
    default; a ``file`` option is a path relative to the recipe, known by its digest.
    ``check(value, input_spec)`` may raise ValueError at planning (say what was expected).
    A ``keyed`` option is in every cache key with its default when a recipe sets none, so
    changing that default recomputes the pictures that used it."""

    name: str
    type: type = float
    default: object = None
    file: bool = False
    help: str = ""
    check: Callable[[object, object], None] | None = field(default=None, compare=False)
    keyed: bool = False


@dataclass(frozen=True)
class Parameterization:
    """An image parameterization: its factory, the recipe options it takes, the render
    settings it works best with where a recipe sets none, and whether it can be transparent
    or start from an image."""

    make: ParamFactory
    options: tuple[Option, ...] = ()
    lr: float = 0.05
    optimizer: str = "adam"
    transforms: bool | str = True  # True: the standard stack; "crops": MACO's; False: none
    alpha: bool = False
    seedable: bool = False  # it can start from an image (its ImageParam has set_raw)

    def option(self, name: str) -> Option | None:
        """Return the declared option called name, or None."""
        return next((o for o in self.options if o.name == name), None)


@dataclass(frozen=True)
class ObjectiveEntry:
    """A registered objective factory; ``channels``: it takes (layer, channel), so a build
    can make one picture per channel with it."""

    factory: ObjectiveFactory
    channels: bool = False


class ContractError(ValueError):
    """A registration that does not fit its hook's contract."""


def _signature(value: object, what: str) -> inspect.Signature | None:
    """Return value's signature, or raise if it is not callable (None: not inspectable)."""
    if not callable(value):
        raise ContractError(f"{what} is a {type(value).__name__}, not a callable")
    try:
        return inspect.signature(value)
    except (TypeError, ValueError):
        return None


def _takes(signature: inspect.Signature | None, *args: object, **kwargs: object) -> bool:
    """Return True if a call with these arguments binds to signature (or it is unknown)."""
    if signature is None:
        return True
    try:
        signature.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


def check_objective(entry: ObjectiveEntry) -> None:
    """Raise ContractError if an objective registration does not fit its contract."""
    signature = _signature(entry.factory, "the factory")
    if entry.channels and not _takes(signature, "layer", 0):
        raise ContractError(
            f"it is registered with channels=True but its factory {signature} does not take "
            "(layer, channel)"
        )


def check_regularizer(factory: object) -> None:
    """Raise ContractError if a regularizer factory cannot be called without arguments."""
    signature = _signature(factory, "the factory")
    if not _takes(signature):
        raise ContractError(f"its factory {signature} cannot be called with no arguments")


def check_parameterization(value: object) -> None:
    """Raise ContractError if a parameterization registration does not fit its contract."""
    if not isinstance(value, Parameterization):
        raise ContractError(f"register a Parameterization(...), not a {type(value).__name__}")
    signature = _signature(value.make, "its make")
    names = {o.name for o in value.options}
    if len(names) != len(value.options):
        raise ContractError("it declares an option twice")
    for option in value.options:
        if option.type not in OPTION_TYPES:
            raise ContractError(
                f"option {option.name!r} has type {option.type!r}, not one of bool, int, float, str"
            )
        if option.file and option.type is not str:
            raise ContractError(f"file option {option.name!r} must have type str")
    extra = {o.name: o.default for o in value.options}
    if value.alpha:
        extra["alpha"] = True
    if not _takes(signature, (1, 3, 8, 8), [], decorrelate=True, **extra):
        raise ContractError(
            f"its make{signature} does not take (shape, generators, decorrelate=..., "
            f"{', '.join(f'{k}=...' for k in extra) or 'and its options'})"
        )
    if value.transforms not in (True, False, "crops"):
        raise ContractError(f"transforms must be True, False or 'crops', not {value.transforms!r}")


def check_source(value: object, kind: type) -> None:
    """Raise ContractError unless value is a kind (ModelSource, DatasetSource) with a callable
    load."""
    if not isinstance(value, kind):
        raise ContractError(f"register a {kind.__name__}(...), not a {type(value).__name__}")
    _signature(value.load, "its load")
