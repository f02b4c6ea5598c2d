"""Digests of weight files, computed once per file and remembered."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from .cache import atomic_write, default_cache_dir

CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    """Hash a file in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: str | Path, index: Path | None = None) -> str:
    """Return a file's SHA-256, reusing the one recorded for the same path, size and mtime."""
    path = Path(path).resolve()
    index = index or default_cache_dir() / "digests.json"
    stat = path.stat()
    stamp = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        known = json.loads(index.read_text())
    except (OSError, ValueError):
        known = {}
    if stamp in known:
        return known[stamp]
    value = _sha256(path)
    known[stamp] = value
    with contextlib.suppress(OSError):  # a read-only cache only costs a re-hash next time
        atomic_write(index, json.dumps(known, indent=0).encode())
    return value
