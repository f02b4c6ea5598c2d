"""Dataset sources: namespaces such as ``folder:PATH`` that yield images in a fixed order."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..errors import AtlasError, unknown
from ..plugins import Registry


class DatasetError(AtlasError):
    """A data set that cannot be found or read."""


class Dataset(Protocol):
    """Images by index: ``dataset[i]`` is (image, label); image (H, W, C) uint8 or float in
    [0, 1], label None, a class index or a per-pixel label map. ``identity`` is plain data
    that changes whenever the images do (part of cache keys)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[np.ndarray | None, object]: ...

    def identity(self) -> dict: ...


@dataclass(frozen=True)
class DatasetSource:
    """A namespace of data sets: ``load(name, **options)`` returns a Dataset."""

    load: Callable[..., Dataset]
    names: Callable[[], Iterable[str]] = field(default=lambda: ())


def parse(source: str) -> tuple[str, str]:
    """Split ``ns/name`` or ``folder:path`` into (namespace, name)."""
    if ":" in source.split("/", 1)[0]:
        return tuple(source.split(":", 1))
    if "/" in source:
        return tuple(source.split("/", 1))
    raise DatasetError(
        f"data set {source!r} needs a namespace, as in 'folder:path/to/images', "
        "'torchvision/CIFAR10' or 'shapes/val'"
    )


def load_dataset(registry: Registry, source: str, **options) -> Dataset:
    """Load the data set a source string names."""
    namespace, name = parse(source)
    sources = registry.items["datasets"]
    if namespace not in sources:
        hint = "install the plugin that provides it; `atlas plugins` lists what is installed"
        raise DatasetError(unknown("data set namespace", namespace, sources, hint))
    return sources[namespace].load(name, **options)


def as_float(image: np.ndarray) -> np.ndarray:
    """Return an (H, W, C) float32 image in [0, 1] from uint8 or float pixels."""
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0
    return pixels.astype(np.float32)
