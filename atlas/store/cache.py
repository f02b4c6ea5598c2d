"""A content-addressed store of results: one PNG, one array and one JSON per unit."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..images import encode_png


def canonical_json(data: object) -> str:
    """Serialise plain data with sorted keys and no whitespace, for hashing."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest(data: object) -> str:
    """Return the SHA-256 hex digest of data's canonical JSON."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def default_cache_dir() -> Path:
    """Return $ATLAS_CACHE_DIR, or feature-atlas under the XDG cache directory."""
    if os.environ.get("ATLAS_CACHE_DIR"):
        return Path(os.environ["ATLAS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "feature-atlas"


def atomic_write(path: Path, data: bytes) -> None:
    """Write data to path so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Entry:
    """One stored result: where its files are and its metadata."""

    key: str
    png: Path
    array: Path
    meta: dict

    def image(self) -> np.ndarray:
        """Load the full-precision (H, W, C) float image."""
        return np.load(self.array).astype(np.float32)


@dataclass(frozen=True)
class Encoded:
    """One picture ready to store: PNG bytes, float16 array bytes and its metadata."""

    key: str
    png: bytes
    array: bytes
    meta: dict

    @classmethod
    def of(cls, key: str, image: np.ndarray, meta: dict, alpha: bool = False) -> Encoded:
        """Encode an (H, W, C) float image (with alpha, its last channel is opacity)."""
        buffer = io.BytesIO()
        np.save(buffer, image.astype(np.float16))
        return cls(key, encode_png(image, alpha), buffer.getvalue(), meta)


class Cache:
    """Results stored under root/<first two hex digits>/<key>.{png,npy,json}."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _paths(self, key: str) -> tuple[Path, Path, Path]:
        base = self.root / key[:2] / key
        return base.with_suffix(".png"), base.with_suffix(".npy"), base.with_suffix(".json")

    def get(self, key: str) -> Entry | None:
        """Return the entry for key, or None if it is missing or damaged (then it is removed)."""
        png, array, meta_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_bytes())
            intact = (
                meta.get("key") == key
                and hashlib.sha256(png.read_bytes()).hexdigest() == meta["png_sha256"]
                and hashlib.sha256(array.read_bytes()).hexdigest() == meta["array_sha256"]
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            intact = False
        if not intact:
            self.discard(key)
            return None
        with contextlib.suppress(OSError):  # mark it used, for `atlas cache prune --older-than`
            os.utime(meta_path)
        return Entry(key, png, array, meta)

    def put(self, key: str, image: np.ndarray, meta: dict, alpha: bool = False) -> Entry:
        """Store an (H, W, C) float image and its metadata; the JSON is written last.

        With alpha the image's last channel is its opacity, kept in the PNG.
        """
        return self.put_encoded(Encoded.of(key, image, meta, alpha))

    def put_encoded(self, item: Encoded) -> Entry:
        """Store a picture already encoded (by a worker, perhaps on another machine)."""
        png, array, meta_path = self._paths(item.key)
        atomic_write(png, item.png)
        atomic_write(array, item.array)
        meta = {
            **item.meta,
            "key": item.key,
            "png_sha256": hashlib.sha256(item.png).hexdigest(),
            "array_sha256": hashlib.sha256(item.array).hexdigest(),
        }
        atomic_write(meta_path, json.dumps(meta, indent=1).encode())
        return Entry(item.key, png, array, meta)

    def discard(self, key: str) -> None:
        """Remove whatever is stored for key."""
        for path in self._paths(key):
            path.unlink(missing_ok=True)
