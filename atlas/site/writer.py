"""Write the static HTML atlas from a manifest: no torch needed, relative links only.

Incremental, as static-site builders are: every file of the site is known with the digest of
its inputs (``outputs.py``); a rebuild makes and writes only the files whose inputs changed,
deletes only files that the previous build wrote and this one does not, leaves everything
else untouched (mtimes kept, so an rsync-style upload sends only the change), and writes its
record last (an interrupted build is repaired by the next one)."""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from ..errors import AtlasError
from ..store.cache import canonical_json
from .files import Source, as_source
from .outputs import Output, builtin_templates, site_outputs, sprite_row
from .paths import slugify
from .record import NAME, Record

__all__ = ["Written", "environment", "slugify", "sparkline", "write_site"]
PENDING = "pending"  # in a record: a file a build began to write (no digest matches it)
LEGACY = ("layers", "units", "pictures", "images", "thumbs", "examples", "static", "search")


def sparkline(values: Sequence[float], width: int = 240, height: int = 60) -> str:
    """Return SVG polyline points for values scaled into a width x height box."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    step = width / max(len(values) - 1, 1)
    return " ".join(
        f"{i * step:.1f},{height - (v - lo) / span * height:.1f}" for i, v in enumerate(values)
    )


def bar_rows(counts: Mapping[str, int], width: int = 240, row: int = 18) -> list[dict]:
    """Return the rows of a horizontal bar chart of counts (most first): the label, the count,
    the bar's width in pixels and its top."""
    top = max(counts.values(), default=0) or 1
    return [
        {"label": label, "count": count, "width": round(width * count / top, 1), "y": i * row}
        for i, (label, count) in enumerate(counts.items())
    ]


def sprite_style(record: Mapping | None) -> str:
    """Return the CSS that shows a picture's box of a shared file, scaled to the element
    (the file itself is set when the element comes into view)."""
    if not record:
        return ""
    x, y, w, h = record["box"]
    width, height = record["size"]
    px = x / (width - w) * 100 if width > w else 0
    py = y / (height - h) * 100 if height > h else 0
    return (
        f"background-size:{width / w * 100:.4g}% {height / h * 100:.4g}%;"
        f"background-position:{px:.4g}% {py:.4g}%;aspect-ratio:{w}/{h}"
    )


def environment(template_dirs: Sequence[str | Path] = ()) -> jinja2.Environment:
    """Return a Jinja environment: user folders first, then the built-in templates."""
    search = [str(p) for p in template_dirs] + [str(builtin_templates())]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search),
        autoescape=jinja2.select_autoescape(["html", "xml"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["sparkline"] = sparkline
    env.filters["bars"] = bar_rows
    env.filters["sprite"] = sprite_style
    env.filters["sprite_row"] = sprite_row
    return env


@functools.cache
def _umask() -> int:
    """Return the process's umask (reading it means setting it; done once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_file(path: Path, data: bytes) -> None:
    """Write a site file so a reader sees the old one or the whole new one (no fsync: a
    site is rebuilt from the cache, and the next build repairs what a crash left)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # readable as any file (mkstemp makes it private)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _prepare(out: Path) -> Record:
    """Return the previous build's record; refuse a folder that holds something else, and
    clear what a build without records (before format 2) wrote."""
    record = Record.load(out)
    if record is not None:
        return record
    if out.exists() and any(out.iterdir()):
        if not (out / "manifest.json").exists():
            raise AtlasError(
                f"output folder {out} is not empty and holds no atlas; "
                "choose another with --out (or output.dir)"
            )
        for name in LEGACY:
            shutil.rmtree(out / name, ignore_errors=True)
    return Record()


@dataclass
class Written:
    """What one write of a site did: files written and deleted (paths in the site)."""

    index: Path
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def _manifest_output(manifest: Mapping, previous: Record, changed: bool) -> tuple[Output, str]:
    """Return manifest.json, dated when the content last changed, and that date."""
    content = {k: v for k, v in manifest.items() if k != "generated"}
    digest = hashlib.sha256(canonical_json(content).encode()).hexdigest()
    moved = changed or previous.files.get("manifest.json") != digest
    when = (
        datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        if moved or not previous.changed
        else previous.changed
    )
    data = {**manifest, "generated": when}

    def text() -> bytes:  # compact: at 15,000 units it is tens of MB
        return json.dumps(data, separators=(",", ":")).encode()

    return Output("manifest.json", digest, text), when


def write_site(
    manifest: Mapping,
    images: Mapping[str, Source | Path | str | bytes],
    out: str | Path,
    template_dirs: Sequence[str | Path] = (),
) -> Path:
    """Write what changed of the index, layer and unit pages, pictures, search index and
    manifest.json; return index.html."""
    return update_site(manifest, images, out, template_dirs).index


def update_site(
    manifest: Mapping,
    images: Mapping[str, Source | Path | str | bytes],
    out: str | Path,
    template_dirs: Sequence[str | Path] = (),
) -> Written:
    """Write the site incrementally; return what was written and deleted."""
    out = Path(out)
    previous = _prepare(out)
    folders = [str(p) for p in template_dirs]
    sources = {key: as_source(value) for key, value in images.items()}
    outputs = site_outputs(manifest, sources, environment(folders), folders)
    stale = [o for o in outputs if _stale(o, previous, out)]
    last, when = _manifest_output(manifest, previous, bool(stale))
    if _stale(last, previous, out):
        stale.append(last)
    outputs.append(last)
    done = Written(out / "index.html")
    if stale:  # first, a record that a crash can leave: what may be written is stale
        pending = {**previous.files, **{o.path: PENDING for o in stale}}
        write_file(out / NAME, Record(pending, previous.changed).text().encode())
    for output in stale:
        write_file(out / output.path, output.make())
        done.written.append(output.path)
    current = {o.path: o.digest for o in outputs}
    for path in sorted(set(previous.files) - set(current)):
        (out / path).unlink(missing_ok=True)
        done.deleted.append(path)
    _remove_empty_folders(out, done.deleted)
    record = Record(current, when)
    if record != previous or not (out / NAME).exists():
        write_file(out / NAME, record.text().encode())
    return done


def _stale(output: Output, previous: Record, out: Path) -> bool:
    """Return True if an output's inputs changed since the last build, or its file is gone."""
    return previous.files.get(output.path) != output.digest or not (out / output.path).exists()


def _remove_empty_folders(out: Path, deleted: Sequence[str]) -> None:
    """Remove the folders that deleting files left empty."""
    for folder in sorted({Path(p).parent for p in deleted}, key=lambda p: -len(p.parts)):
        while folder != Path(".") and (out / folder).is_dir() and not any((out / folder).iterdir()):
            (out / folder).rmdir()
            folder = folder.parent
