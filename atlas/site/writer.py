"""Write the static HTML atlas from a manifest: no torch needed, relative links only."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path

import jinja2

from ..errors import AtlasError
from ..images import thumbnail_png
from ..store.cache import atomic_write
from .search import search_files

THUMB_SIZE = 160
PICTURES_PAGE = "pictures.html"
STATIC_FILES = ("atlas.css", "atlas.js")
GENERATED = ("layers", "units", "pictures", "images", "thumbs", "examples", "static", "search")


def slugify(name: str, taken: set[str]) -> str:
    """Return a file-name-safe slug for a layer name, unique among taken."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "layer"
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    taken.add(slug)
    return slug


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


def builtin_templates() -> Path:
    """Return the folder of the built-in templates."""
    return Path(str(resources.files("atlas.templates")))


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
    return env


def _write_page(env: jinja2.Environment, template: str, out: Path, rel: str, **context) -> None:
    """Render one page; rel is the page's path from the site root."""
    root = "../" * rel.count("/")
    html = env.get_template(template).render(root=root, **context)
    atomic_write(out / rel, html.encode("utf-8"))


def picture_records(manifest: Mapping) -> Iterator[Mapping]:
    """Yield every record of the manifest that stands for one stored picture."""
    for layer in manifest["layers"]:
        for unit in layer["units"]:
            yield unit
            if unit.get("negative"):
                yield unit["negative"]
            yield from unit.get("diversity", [])
            yield from unit.get("examples", [])
    yield from manifest.get("pictures", [])


def _copy_images(manifest: Mapping, images: Mapping[str, Path | bytes], out: Path) -> None:
    """Copy each stored picture (a file, or bytes made for the site) into the site and
    write its thumbnail."""
    for record in picture_records(manifest):
        source = images.get(record["key"])
        if source is None or not record.get("image"):
            continue
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        atomic_write(out / record["image"], data)
        if record.get("thumb"):
            atomic_write(out / record["thumb"], thumbnail_png(data, THUMB_SIZE))


def prepare_out_dir(out: Path) -> None:
    """Empty the folders an earlier atlas wrote in out; refuse a folder that is no atlas."""
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").exists():
        raise AtlasError(
            f"output folder {out} is not empty and holds no atlas; "
            "choose another with --out (or output.dir)"
        )
    for name in GENERATED:
        shutil.rmtree(out / name, ignore_errors=True)


def _write_pictures(env: jinja2.Environment, out: Path, manifest: Mapping) -> None:
    """Write the page listing the composed pictures and one page per picture."""
    pictures = manifest.get("pictures", [])
    if not pictures:
        return
    _write_page(env, "pictures.html", out, PICTURES_PAGE, manifest=manifest)
    for i, picture in enumerate(pictures):
        _write_page(
            env,
            "picture.html",
            out,
            picture["page"],
            manifest=manifest,
            picture=picture,
            prev=pictures[i - 1] if i else None,
            next=pictures[i + 1] if i + 1 < len(pictures) else None,
        )


def write_site(
    manifest: Mapping,
    images: Mapping[str, Path | bytes],
    out: str | Path,
    template_dirs: Sequence[str | Path] = (),
) -> Path:
    """Write index, layer and unit pages, images and manifest.json; return index.html."""
    out = Path(out)
    env = environment(template_dirs)
    prepare_out_dir(out)
    _copy_images(manifest, images, out)
    for name in STATIC_FILES:
        (out / "static").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(builtin_templates() / name, out / "static" / name)
    _write_page(
        env, "index.html", out, "index.html", manifest=manifest, pictures_page=PICTURES_PAGE
    )
    for layer in manifest["layers"]:
        _write_page(env, "layer.html", out, layer["page"], manifest=manifest, layer=layer)
        units = layer["units"]
        for i, unit in enumerate(units):
            _write_page(
                env,
                "unit.html",
                out,
                unit["page"],
                manifest=manifest,
                layer=layer,
                unit=unit,
                prev=units[i - 1] if i else None,
                next=units[i + 1] if i + 1 < len(units) else None,
            )
    _write_pictures(env, out, manifest)
    for rel, script in search_files(manifest).items():
        atomic_write(out / rel, script.encode("utf-8"))
    atomic_write(out / "manifest.json", json.dumps(manifest, indent=1).encode("utf-8"))
    return out / "index.html"
