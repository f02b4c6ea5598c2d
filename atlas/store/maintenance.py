"""Keep a shared cache in bounds: what it holds, and removing what is old or unused."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SECONDS_PER_DAY = 86_400
COUNTS = {"picture": "pictures", "examples": "examples", "analysis": "analyses"}


def _counts() -> dict[str, int]:
    return {**dict.fromkeys(COUNTS.values(), 0), "bytes": 0}


@dataclass(frozen=True)
class Item:
    """One stored result: a picture (png, npy, json), a layer's dataset examples, or a
    layer's finding of an analysis of the dataset pass."""

    key: str
    kind: str  # "picture", "examples" or "analysis"
    paths: tuple[Path, ...]
    model: str
    used: float  # when it was last written or read (seconds since the epoch)

    @property
    def size(self) -> int:
        """Return the bytes it takes on disk."""
        total = 0
        for path in self.paths:
            if path.is_dir():
                total += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            elif path.exists():
                total += path.stat().st_size
        return total

    def remove(self) -> None:
        """Delete its files, the metadata first so a reader never sees half an entry."""
        for path in sorted(self.paths, key=lambda p: p.suffix != ".json"):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _model(meta: dict) -> str:
    model = meta.get("spec", {}).get("model") or meta.get("model") or {}
    digest = str(model.get("digest", ""))[:12]
    return f"{model.get('source', '?')} ({digest})" if digest else str(model.get("source", "?"))


def _read(meta_path: Path) -> dict:
    """Return an entry's metadata, or {} if it cannot be read."""
    try:
        return json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return {}


def items(root: str | Path) -> Iterator[Item]:
    """Yield every stored picture, every layer's examples and every analysis finding under a
    cache root."""
    root = Path(root)
    for meta_path in sorted(root.glob("??/*.json")):
        paths = tuple(meta_path.with_suffix(s) for s in (".png", ".npy", ".json"))
        used = meta_path.stat().st_mtime
        yield Item(meta_path.stem, "picture", paths, _model(_read(meta_path)), used)
    for kind, pattern in (("examples", "examples/??/*"), ("analysis", "analyses/*/??/*")):
        for meta_path in sorted(root.glob(f"{pattern}/meta.json")):
            folder, used = meta_path.parent, meta_path.stat().st_mtime
            yield Item(folder.name, kind, (folder,), _model(_read(meta_path)), used)


def info(root: str | Path) -> dict:
    """Return what a cache holds: entries, bytes, and both per model."""
    per_model: dict[str, dict] = {}
    total = _counts()
    for item in items(root):
        size = item.size
        row = per_model.setdefault(item.model, _counts())
        for counts in (row, total):
            counts[COUNTS[item.kind]] += 1
            counts["bytes"] += size
    return {"root": str(Path(root).resolve()), **total, "models": per_model}


def prune(
    root: str | Path,
    older_than_days: float | None = None,
    keep: Iterable[str] | None = None,
    dry_run: bool = False,
) -> dict:
    """Remove entries not used for older_than_days, and/or every entry whose key is not in
    keep; return what was (or, with dry_run, would be) removed."""
    keep = set(keep) if keep is not None else None
    cutoff = time.time() - older_than_days * SECONDS_PER_DAY if older_than_days else None
    removed = _counts()
    for item in list(items(root)):
        stale = cutoff is not None and item.used < cutoff
        unused = keep is not None and item.key not in keep
        if not (stale or unused):
            continue
        removed[COUNTS[item.kind]] += 1
        removed["bytes"] += item.size
        if not dry_run:
            item.remove()
    return removed
