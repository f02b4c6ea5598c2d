"""Data sets: sources such as ``folder:PATH`` that yield images in a fixed order, and the
dataset pass that reads them through a model."""

from __future__ import annotations

import numpy as np

from ..contracts import Dataset
from ..errors import AtlasError

__all__ = ["Dataset", "DatasetError", "as_float", "parse"]


class DatasetError(AtlasError):
    """A data set that cannot be found or read."""


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


def as_float(image: np.ndarray) -> np.ndarray:
    """Return an (H, W, C) float32 image in [0, 1] from uint8 or float pixels."""
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0
    return pixels.astype(np.float32)
