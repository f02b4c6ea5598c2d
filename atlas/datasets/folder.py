"""``folder:PATH``: every image file under a folder, recursively, in sorted order; with
``options = {labels = "folders"}`` each first-level sub-folder is a class (as torchvision's
``ImageFolder`` reads a tree), and its images are labelled with it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..images import IMAGE_SUFFIXES
from . import DatasetError


@dataclass
class FolderDataset:
    """Image files found under a folder; unreadable ones give None (skipped, counted)."""

    root: Path
    paths: list[Path]
    grey: bool = False
    skipped: list[str] = field(default_factory=list)
    classes: tuple[str, ...] = ()  # with labels = "folders": the sub-folders, sorted

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[np.ndarray | None, object]:
        path = self.paths[index]
        flag = cv2.IMREAD_GRAYSCALE if self.grey else cv2.IMREAD_COLOR
        pixels = cv2.imread(str(path), flag)
        if pixels is None:
            return None, None
        image = pixels if self.grey else cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
        return image, self.label(path)

    def label(self, path: Path) -> int | None:
        """Return the class of an image: the index of its first-level sub-folder."""
        if not self.classes:
            return None
        return self.classes.index(path.relative_to(self.root).parts[0])

    def identity(self) -> dict:
        """Name the folder's files by relative path, size and modification time."""
        h = hashlib.sha256()
        for path in self.paths:
            stat = path.stat()
            h.update(f"{path.relative_to(self.root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return {"folder": str(self.root), "files": len(self.paths), "digest": h.hexdigest()}


LABELS = ("none", "folders")


def load(
    name: str, base_dir: Path | None = None, channels: int = 3, labels: str = "none", **_
) -> FolderDataset:
    """Find every image file under the folder (relative to base_dir); with labels="folders",
    label each by its first-level sub-folder."""
    if labels not in LABELS:
        raise DatasetError(
            f"folder:{name}: dataset.options.labels must be one of {', '.join(LABELS)}, "
            f"not {labels!r}"
        )
    root = ((base_dir or Path.cwd()) / name).resolve()
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise DatasetError(
            f"image folder {root} holds no image files ({', '.join(IMAGE_SUFFIXES)})"
        )
    if labels == "none":
        return FolderDataset(root, paths, grey=channels == 1)
    loose = [p for p in paths if len(p.relative_to(root).parts) < 2]
    if loose:
        raise DatasetError(
            f"folder {root}: with labels = 'folders' every image must be in a class's "
            f"sub-folder, but {loose[0].name} is not"
        )
    classes = tuple(sorted({p.relative_to(root).parts[0] for p in paths}))
    return FolderDataset(root, paths, grey=channels == 1, classes=classes)
