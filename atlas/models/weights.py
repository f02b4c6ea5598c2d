"""Digests of weight files, computed once per file and remembered."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from ..store.cache import atomic_write, default_cache_dir

CHUNK = 1 << 20
_CACHE_ROOT: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "atlas_digest_cache", default=None
)


@contextlib.contextmanager
def digests_in(cache_root: str | Path) -> Iterator[None]:
    """Remember weight digests in <cache_root>/digests.json inside the block (the build's
    cache, not the default one)."""
    token = _CACHE_ROOT.set(Path(cache_root))
    try:
        yield
    finally:
        _CACHE_ROOT.reset(token)


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
    index = index or (_CACHE_ROOT.get() or default_cache_dir()) / "digests.json"
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
