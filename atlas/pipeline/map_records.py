"""The activation atlas in the manifest: per mapped layer its page, grid, layout settings
and kept cells, each with its picture, thumbnail, real patches (in one strip), class and
the units nearest its direction (linked where the atlas shows that layer)."""

from __future__ import annotations

from collections.abc import Mapping

from ..datasets.examples import crop_box
from ..site import paths
from ..store.cache import Entry
from .maps import MapLayer
from .plan import Plan


def patch_key(mapped: MapLayer, cell: int, rank: int) -> str:
    """Return the key a cell's real patch is known by (its source, in the site's images)."""
    return f"{mapped.layout_key}:patch:{cell}:{rank}"


def maps_record(
    plan: Plan,
    entries: Mapping[str, Entry | None],
    errors: dict,
    layers: list[dict],
) -> dict | None:
    """Return the manifest's ``activation_atlas``: {layer: map} (None: none asked)."""
    if plan.maps is None:
        return None
    pages = {layer["name"]: layer for layer in layers}
    taken: set[str] = set()
    out = {}
    for mapped in plan.maps.layers:
        if not mapped.laid_out:
            continue
        slug = paths.slugify(mapped.name, taken)
        cells = [
            _cell(mapped, slug, i, entries, errors, pages.get(mapped.name))
            for i in range(len(mapped.cells))
        ]
        out[mapped.name] = {
            "name": mapped.name,
            "slug": slug,
            "page": paths.map_page(slug),
            "grid": plan.maps.settings.grid,
            "layout": plan.maps.settings.layout(),
            "classes": list(mapped.classes),
            "layer_page": pages[mapped.name]["page"] if mapped.name in pages else None,
            "cells": cells,
        }
    return out


def _cell(
    mapped: MapLayer,
    slug: str,
    i: int,
    entries: Mapping[str, Entry | None],
    errors: dict,
    layer: dict | None,
) -> dict:
    """Return one cell's record."""
    cell, task = mapped.cells[i], mapped.tasks[i]
    entry = entries.get(task.key)
    size = task.settings.size
    image = paths.cell_image(slug, i)
    return {
        "index": i,
        "column": cell.column,
        "row": cell.row,
        "x": round(cell.x, 6),
        "y": round(cell.y, 6),
        "count": cell.count,
        "key": task.key,
        "page": paths.cell_page(slug, i),
        "image": image if entry else None,
        "size": list(size),
        "thumb": paths.thumb(f"maps/{slug}", i, len(mapped.cells), size, image) if entry else None,
        "objective_final": entry.meta.get("objective_final") if entry else None,
        "error": None if entry else errors.get(task.key, "not computed"),
        "class": mapped.classes[cell.klass] if cell.klass is not None else None,
        "patches": _patches(mapped, slug, i),
        "units": [_unit(c, weight, layer) for c, weight in cell.units()],
    }


def _unit(channel: int, weight: float, layer: dict | None) -> dict:
    """Return a unit near a cell's direction, with its page where the atlas has one."""
    record = {"channel": channel, "weight": round(weight, 4), "page": None, "thumb": None}
    record["label"] = None
    if layer is not None and channel < len(layer["units"]):
        unit = layer["units"][channel]
        record.update(page=unit["page"], thumb=unit["thumb"], label=unit.get("label"))
    return record


def _patches(mapped: MapLayer, slug: str, i: int) -> list[dict]:
    """Return the records of a cell's nearest real patches, in the cell's strip (their
    images and positions stored with the cells: the samples are not read)."""
    images, places = mapped.patches[0][i], mapped.patches[1][i]
    return [
        {
            **paths.cell_patch(slug, i, rank, len(images), mapped.field_size),
            "key": patch_key(mapped, i, rank),
            "index": int(index),
            "position": [int(v) for v in place],
        }
        for rank, (index, place) in enumerate(zip(images, places, strict=True))
    ]


def patch_box(mapped: MapLayer, position, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Return a patch's (top, left, h, w) in its prepared image."""
    grid = tuple(mapped.layer.shape[1:])
    return crop_box(position, grid, mapped.field_size, size)
