"""``segfolder:PATH``: images under ``PATH/images/`` with a label map each, a PNG of the same
file stem under ``PATH/labels/`` (pixel value = class, 255 = void), and the class names one
per line in ``PATH/classes.txt`` (without it the class names are the numbers)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..images import IMAGE_SUFFIXES
from . import DatasetError


@dataclass
class SegFolder:
    """Image files paired with label maps; an unreadable pair gives None (skipped, counted)."""

    root: Path
    paths: list[Path]
    labels: list[Path]
    classes: tuple[str, ...] = ()
    grey: bool = False

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[np.ndarray | None, object]:
        pixels = cv2.imread(str(self.paths[index]), cv2.IMREAD_COLOR)
        labels = cv2.imread(str(self.labels[index]), cv2.IMREAD_UNCHANGED)
        if pixels is None or labels is None or labels.ndim != 2:
            return None, None
        image = pixels.mean(-1, keepdims=True) if self.grey else pixels[..., ::-1]
        return np.ascontiguousarray(image.astype(np.uint8)), labels.astype(np.int64)

    def identity(self) -> dict:
        """Name the files by relative path, size and modification time, and the classes."""
        h = hashlib.sha256()
        for path in [*self.paths, *self.labels]:
            stat = path.stat()
            h.update(f"{path.relative_to(self.root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        return {"segfolder": str(self.root), "files": len(self.paths), "digest": h.hexdigest()}


def _classes(root: Path) -> tuple[str, ...]:
    """Read classes.txt: one class name per line, line i naming label value i."""
    path = root / "classes.txt"
    if not path.is_file():
        return ()
    return tuple(line.strip() for line in path.read_text("utf-8").splitlines())


def load(name: str, base_dir: Path | None = None, channels: int = 3, **_) -> SegFolder:
    """Pair every image under PATH/images/ with its label PNG under PATH/labels/."""
    root = ((base_dir or Path.cwd()) / name).resolve()
    images, labels = root / "images", root / "labels"
    if not images.is_dir() or not labels.is_dir():
        raise DatasetError(
            f"segfolder {root} needs the folders images/ and labels/ (a label PNG per image, "
            "of the same file stem)"
        )
    paths = sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DatasetError(f"segfolder {root}: images/ holds no image files")
    pairs = [labels / p.relative_to(images).with_suffix(".png") for p in paths]
    missing = [p for p, label in zip(paths, pairs, strict=True) if not label.is_file()]
    if missing:
        raise DatasetError(
            f"segfolder {root}: {len(missing)} image(s) have no label map, e.g. "
            f"{missing[0].relative_to(root)} (expected labels/"
            f"{missing[0].relative_to(images).with_suffix('.png')})"
        )
    return SegFolder(root, paths, pairs, _classes(root), grey=channels == 1)
