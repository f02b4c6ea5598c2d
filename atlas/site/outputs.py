"""Every file of a site, each with the digest of what it is made from and a way to make it:
pages (from the records they show and the templates), the layer pages' unit chunks, the
search index, the shared picture files, the static files and manifest.json. The writer
makes only those whose digest changed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2

from ..store.cache import canonical_json
from . import paths
from .files import Source, compose, sprites
from .search import search_files

VERSION = "2"  # bump when a change to the writer changes what it writes
STATIC_FILES = ("atlas.css", "atlas.js")
FIRST_PAGE = 120  # units a layer page holds in its HTML; the rest come from its chunks
CHUNK = 512  # unit records per chunk script of a layer page
INDEX_STRIP = 12  # thumbnails per layer on the index


@dataclass(frozen=True)
class Output:
    """One file of the site: where it goes, the digest of its inputs, how to make it."""

    path: str
    digest: str
    make: Callable[[], bytes]


def _digest(*parts: object) -> str:
    return hashlib.sha256(canonical_json([VERSION, *parts]).encode()).hexdigest()


def builtin_templates() -> Path:
    """Return the folder of the built-in templates."""
    return Path(str(resources.files("atlas.templates")))


def templates_digest(folders: list[str]) -> str:
    """Return a digest of every template the pages can use (a changed template rewrites
    every page)."""
    h = hashlib.sha256()
    for folder in folders:
        for path in sorted(Path(folder).glob("*")):
            if path.is_file():
                h.update(f"{path.name}\n".encode() + path.read_bytes())
    return h.hexdigest()


def _page(env: jinja2.Environment, template: str, rel: str, context: dict, tdigest: str):
    """Return a page: rendered from a template with context (rel: its path in the site)."""

    def make() -> bytes:
        root = "../" * rel.count("/")
        return env.get_template(template).render(root=root, **context).encode("utf-8")

    return Output(rel, _digest(template, tdigest, context), make)


def _text(rel: str, text: str) -> Output:
    return Output(rel, _digest(hashlib.sha256(text.encode()).hexdigest()), text.encode)


PAGE_LEFT_OUT = (
    "layers", "pictures", "generated", "units_total", "connections", "activation_atlas",
)  # fmt: skip


def site_facts(manifest: Mapping) -> dict:
    """Return what every page may show of the atlas: the manifest without its layers,
    pictures, totals and build time, and of its connections only the method and top (so
    adding or removing a layer rewrites no page that does not show it)."""
    facts = {k: v for k, v in manifest.items() if k not in PAGE_LEFT_OUT}
    pairs = manifest.get("connections") or []
    facts["connections"] = {k: pairs[0][k] for k in ("method", "top")} if pairs else None
    maps = (manifest.get("activation_atlas") or {}).values()
    facts["maps"] = {m["name"]: m["page"] for m in maps}  # links from the index and layers
    return facts


def brief(unit: Mapping | None) -> dict | None:
    """Return what a neighbour's link shows of a unit or picture."""
    if unit is None:
        return None
    return {k: unit[k] for k in ("channel", "name", "page", "label") if k in unit}


def layer_facts(layer: Mapping) -> dict:
    """Return a layer without its units."""
    return {k: v for k, v in layer.items() if k != "units"}


def _pages(manifest: Mapping, env: jinja2.Environment, tdigest: str) -> Iterator[Output]:
    """Yield every HTML page."""
    facts = site_facts(manifest)
    layers = manifest["layers"]
    pictures = manifest.get("pictures", [])
    index = {
        **facts,
        "units_total": manifest["units_total"],
        "layers": [
            {**layer_facts(x), "units": x["units"][:INDEX_STRIP], "count": len(x["units"])}
            for x in layers
        ],
        "pictures": pictures[:INDEX_STRIP],
        "pictures_total": len(pictures),
    }
    yield _page(env, "index.html", "index.html", {"manifest": index}, tdigest)
    for layer in layers:
        units = layer["units"]
        chunks = [paths.layer_chunk(layer["slug"], i) for i in range(_chunks(len(units)))]
        context = {
            "manifest": facts,
            "layer": {**layer_facts(layer), "units": units[:FIRST_PAGE], "count": len(units)},
            "chunks": chunks,
        }
        yield _page(env, "layer.html", layer["page"], context, tdigest)
        short = layer_facts(layer)
        for i, unit in enumerate(units):
            context = {
                "manifest": facts,
                "layer": short,
                "unit": unit,
                "prev": brief(units[i - 1] if i else None),
                "next": brief(units[i + 1] if i + 1 < len(units) else None),
            }
            yield _page(env, "unit.html", unit["page"], context, tdigest)
    if pictures:
        context = {"manifest": {**facts, "pictures": pictures}}
        yield _page(env, "pictures.html", paths.PICTURES_PAGE, context, tdigest)
    for i, picture in enumerate(pictures):
        context = {
            "manifest": facts,
            "picture": picture,
            "prev": brief(pictures[i - 1] if i else None),
            "next": brief(pictures[i + 1] if i + 1 < len(pictures) else None),
        }
        yield _page(env, "picture.html", picture["page"], context, tdigest)
    yield from _map_pages(manifest, facts, env, tdigest)


def _map_pages(manifest: Mapping, facts: dict, env, tdigest: str) -> Iterator[Output]:
    """Yield each activation atlas's page and its cells' pages."""
    for atlas in (manifest.get("activation_atlas") or {}).values():
        yield _page(env, "map.html", atlas["page"], {"manifest": facts, "map": atlas}, tdigest)
        short = {k: v for k, v in atlas.items() if k != "cells"}
        for cell in atlas["cells"]:
            context = {"manifest": facts, "map": short, "cell": cell}
            yield _page(env, "cell.html", cell["page"], context, tdigest)


def _chunks(units: int) -> int:
    return max(1, -(-units // CHUNK))


def sprite_row(record: Mapping | None) -> list | None:
    """Return a sprite record as [file, x, y, w, h, sheet w, sheet h] (None: none)."""
    if not record:
        return None
    return [record["image"], *record["box"], *record["size"]]


def unit_row(unit: Mapping) -> dict:
    """Return what a layer page's script needs of a unit to show, filter and sort it."""
    examples = unit.get("examples") or []
    inputs = unit.get("inputs") or []
    return {
        "c": unit["channel"],
        "l": unit.get("label") or "",
        "k": unit.get("concept") or "",
        "o": unit.get("objective_final"),
        "r": unit.get("reached_over_max"),
        "p": unit["page"],
        "e": bool(unit.get("error")),
        "t": sprite_row(unit.get("thumb")),
        "x": sprite_row(examples[0]) if examples else None,
        "n": sprite_row(inputs[0].get("thumb")) if inputs else None,
    }


def _layer_chunks(manifest: Mapping) -> Iterator[Output]:
    """Yield the scripts that hold each layer's unit records, CHUNK to a file."""
    for layer in manifest["layers"]:
        units = layer["units"]
        for i in range(_chunks(len(units))):
            rows = [unit_row(u) for u in units[i * CHUNK : (i + 1) * CHUNK]]
            body = json.dumps(rows, separators=(",", ":"), ensure_ascii=True)
            text = f"window.atlasLayer&&window.atlasLayer.units({i},{body});\n"
            yield _text(paths.layer_chunk(layer["slug"], i), text)


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
    for atlas in (manifest.get("activation_atlas") or {}).values():
        for cell in atlas["cells"]:
            yield cell
            yield from cell["patches"]


def _pictures(manifest: Mapping, images: Mapping[str, Source]) -> Iterator[Output]:
    """Yield each full-size picture, and each shared file (thumbnail sheets, example
    strips) composed from the pictures in it."""
    shared: list[tuple[str, dict]] = []
    for record in picture_records(manifest):
        source = images.get(record["key"])
        if source is None or not record.get("image"):
            continue
        if "box" in record:  # a dataset example, in its unit's strip
            shared.append((record["key"], record))
            continue
        yield Output(record["image"], _digest("copy", source.digest), source.read)
        if record.get("thumb") and record["thumb"]["image"] != record["image"]:
            shared.append((record["key"], record["thumb"]))  # a smaller copy, in a sheet
    for path, (size, cells) in sprites(shared).items():
        digests = [(box, images[key].digest) for box, key in cells]

        def make(size=size, cells=cells) -> bytes:
            return compose(size, [(box, images[key].read()) for box, key in cells])

        yield Output(path, _digest("sprites", size, digests), make)


def _static(template_dirs: list[str]) -> Iterator[Output]:
    """Yield the site's CSS and script (a template folder may override them)."""
    for name in STATIC_FILES:
        path = next(
            (Path(d) / name for d in template_dirs if (Path(d) / name).is_file()),
            builtin_templates() / name,
        )
        data = path.read_bytes()
        yield Output(f"static/{name}", _digest(hashlib.sha256(data).hexdigest()), lambda d=data: d)


def site_outputs(
    manifest: Mapping,
    images: Mapping[str, Source],
    env: jinja2.Environment,
    template_dirs: list[str],
) -> list[Output]:
    """Return every file of the site but manifest.json."""
    tdigest = templates_digest([*template_dirs, str(builtin_templates())])
    found: list[Output] = []
    found += _static(template_dirs)
    found += _pictures(manifest, images)
    found += _pages(manifest, env, tdigest)
    found += _layer_chunks(manifest)
    found += (_text(rel, text) for rel, text in search_files(manifest).items())
    return found
