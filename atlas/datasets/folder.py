"""``folder:PATH``: every image file under a folder, recursively, in sorted order."""

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

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[np.ndarray | None, object]:
        path = self.paths[index]
        flag = cv2.IMREAD_GRAYSCALE if self.grey else cv2.IMREAD_COLOR
        pixels = cv2.imread(str(path), flag)
        if pixels is None:
            return None, None
        return (pixels if self.grey else cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)), None

    def identity(self) -> dict:
        """Name the folder's files by relative path, size and modification time."""
        h = hashlib.sha256()
        for path in self.paths:
            stat = path.stat()
            h.update(f"{path.relative_to(self.root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return {"folder": str(self.root), "files": len(self.paths), "digest": h.hexdigest()}


def load(name: str, base_dir: Path | None = None, channels: int = 3, **_) -> FolderDataset:
    """Find every image file under the folder (relative to base_dir)."""
    root = ((base_dir or Path.cwd()) / name).resolve()
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise DatasetError(
            f"image folder {root} holds no image files ({', '.join(IMAGE_SUFFIXES)})"
        )
    return FolderDataset(root, paths, grey=channels == 1)
