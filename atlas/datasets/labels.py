"""The labels a data set gives with its images: none, a class per image, or a class per
pixel (a label map), and the names of those classes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..contracts import Dataset

PIXEL, IMAGE = "pixel", "image"
VOID = 255  # in label maps: no class (VOC's borders, Cityscapes' and segfolder's ignore)
BACKGROUND = 0  # label 0 (background, "unlabelled") is never a concept


def label_kind(label: object) -> str | None:
    """Return PIXEL for a 2-D integer label map, IMAGE for a class index, else None."""
    if label is None or isinstance(label, bool):
        return None
    if isinstance(label, (int, np.integer)):
        return IMAGE
    array = np.asarray(label)
    if not np.issubdtype(array.dtype, np.integer):
        return None
    return IMAGE if array.ndim == 0 else PIXEL if array.ndim == 2 else None


@dataclass(frozen=True)
class Labels:
    """What a data set's labels are: their kind (None: it has none) and the class names,
    indexed by label value (empty: the values are the names)."""

    kind: str | None = None
    classes: tuple[str, ...] = ()

    def name(self, value: int) -> str:
        """Return the name of a label value."""
        return self.classes[value] if 0 <= value < len(self.classes) else str(value)


def class_names(dataset: Dataset) -> tuple[str, ...]:
    """Return the class names a data set declares (``classes``: a list or a method)."""
    classes = getattr(dataset, "classes", None)
    if callable(classes):
        classes = classes()
    return tuple(str(c) for c in classes) if classes else ()


def probe(dataset: Dataset, order: Sequence[int]) -> Labels:
    """Look at the first readable sample the pass would read and say what its labels are."""
    for index in list(order)[:8]:  # a few unreadable files do not hide the labels
        image, label = dataset[int(index)]
        if image is not None:
            kind = label_kind(label)
            return Labels(kind, class_names(dataset) if kind else ())
    return Labels()
