"""``torchvision/NAME``: torchvision's data sets whose files are already on disk."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import unknown
from . import DatasetError


def names() -> list[str]:
    """Return the data set classes torchvision offers."""
    import torchvision.datasets as tvd

    return sorted(n for n in tvd.__all__ if inspect.isclass(getattr(tvd, n, None)))


@dataclass
class TorchvisionDataset:
    """A torchvision data set; items are converted to numpy images."""

    data: object
    spec: dict

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[np.ndarray | None, object]:
        image, label = self.data[index]
        if hasattr(label, "getbands"):  # a PIL label map (VOC, Cityscapes): its class values
            label = np.asarray(label).astype(np.int64)
        return np.asarray(image), label

    def identity(self) -> dict:
        return self.spec

    @property
    def classes(self) -> tuple[str, ...]:
        """Return the names of the label values, where torchvision knows them."""
        return class_names(self.data)


# VOCSegmentation's label values (255: the void border), which torchvision does not name
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


def class_names(data: object) -> tuple[str, ...]:
    """Return a torchvision data set's class names by label value: ``classes`` (CIFAR,
    ImageFolder ...), Cityscapes' records by id, VOC's fixed list."""
    if type(data).__name__ == "VOCSegmentation":
        return VOC_CLASSES
    classes = list(getattr(data, "classes", None) or ())
    if classes and hasattr(classes[0], "id") and hasattr(classes[0], "name"):
        by_id = {c.id: c.name for c in classes if c.id >= 0}
        return tuple(by_id.get(i, str(i)) for i in range(max(by_id) + 1))
    return tuple(str(c) for c in classes)


def load(name: str, root: str = "", base_dir: Path | None = None, **options) -> TorchvisionDataset:
    """Open a torchvision data set from files on disk; never downloads."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, name, None)
    if not inspect.isclass(cls):
        hint = "see torchvision.datasets"
        raise DatasetError(unknown("torchvision data set", name, names(), hint))
    if not root:
        raise DatasetError(
            f"torchvision/{name} needs dataset.options.root, the folder of its files"
        )
    folder = ((base_dir or Path.cwd()) / root).resolve()
    kwargs = {k: v for k, v in options.items() if k != "channels"}
    if "download" in inspect.signature(cls).parameters:
        kwargs["download"] = False
    try:
        data = cls(str(folder), **kwargs)
    except (RuntimeError, OSError, FileNotFoundError) as exc:
        raise DatasetError(
            f"torchvision/{name} is not on disk under {folder} ({exc}); offline nothing is "
            "downloaded: put its files there or point dataset.options.root at them"
        ) from None
    return TorchvisionDataset(data, {"torchvision": name, "root": str(folder), **kwargs})
