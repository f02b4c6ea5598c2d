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
        return np.asarray(image), label

    def identity(self) -> dict:
        return self.spec


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
