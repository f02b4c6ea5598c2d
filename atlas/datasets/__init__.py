"""Data sets: sources such as ``folder:PATH`` that yield images in a fixed order, and the
dataset pass that reads them through a model."""

from __future__ import annotations

from ..contracts import Dataset
from ..errors import AtlasError
from ..images import as_float  # re-exported: plugins read it here

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
