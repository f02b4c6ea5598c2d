"""The pictures a build hands to the site, as sources known by their cache keys: stored
pictures, and dataset example crops (drawn with their unit's mask where concept labels
give one). Nothing is read until the site needs a file it does not have."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path

from ..datasets.concepts import unit_mask
from ..datasets.examples import crop_box
from ..datasets.prepare import prepare
from ..images import encode_png
from ..site import Source
from ..store.cache import Entry
from ..store.findings import Finding
from .gather import example_file_key
from .labelling import masked_crop
from .map_records import patch_box, patch_key
from .plan import Plan


def picture_sources(entries: Mapping[str, Entry | None]) -> dict[str, Source]:
    """Return each stored picture's PNG, known by its (content-addressed) key."""
    return {key: Source(key, e.png.read_bytes) for key, e in entries.items() if e is not None}


def read_crop(path: str, finding: Finding | None, unit: int, rank: int, index: int, box) -> bytes:
    """Return an example crop: its PNG, or with its unit's mask as alpha where it has one."""
    if finding is not None:
        mask = unit_mask(finding.arrays, finding.meta, unit, rank, index)
        if mask is not None:
            top, left, h, w = box
            masked = masked_crop(path, mask[top : top + h, left : left + w])
            if masked is not None:
                return masked
    return Path(path).read_bytes()


def example_sources(
    plan: Plan, examples: Mapping[str, dict], concepts: Mapping[str, Finding]
) -> dict[str, Source]:
    """Return every dataset example's crop, known by the layer's findings key and, where
    it is drawn with a mask, the concept finding's key."""
    if plan.dataset is None:
        return {}
    size = tuple(plan.adapter.input.size)
    out = {}
    for layer in plan.layers:
        found = examples.get(layer.name)
        if found is None:
            continue
        finding = concepts.get(layer.name)
        if finding is not None and "masks" not in finding.arrays:
            finding = None
        prefix = f"{plan.dataset.keys[layer.name]}:{finding.key if finding else ''}"
        grid = tuple(layer.shape[1:]) if len(layer.shape) == 3 else None
        field = tuple(found.get("field", size))
        for unit in found["units"]:
            c = unit["channel"]
            for rank, example in enumerate(unit["examples"]):
                box = crop_box(example["position"], grid, field, size)
                read = partial(read_crop, example["file"], finding, c, rank, example["index"], box)
                out[example_file_key(layer.name, c, rank)] = Source(f"{prefix}:{c}:{rank}", read)
    return out


def read_patch(dataset, adapter, index: int, box) -> bytes:
    """Return a real patch of a map cell: its image prepared as the model sees it, cut."""
    top, left, h, w = box
    image = prepare(dataset[index][0], adapter).transpose(1, 2, 0)
    return encode_png(image[top : top + h, left : left + w])


def patch_sources(plan: Plan, maps: Mapping[str, dict] | None) -> dict[str, Source]:
    """Return every map cell's real patches, read from the data set when the site needs
    them (known by the layout, the cell, the image and the position)."""
    if not maps or plan.maps is None or plan.dataset is None:
        return {}
    size = tuple(plan.adapter.input.size)
    by_name = {m.name: m for m in plan.maps.layers}
    out = {}
    for name, record in maps.items():
        mapped = by_name[name]
        for cell in record["cells"]:
            for rank, patch in enumerate(cell["patches"]):
                box = patch_box(mapped, patch["position"], size)
                read = partial(read_patch, plan.dataset.dataset, plan.adapter, patch["index"], box)
                where = f"{patch['index']}:{patch['position']}:{box}"
                out[patch_key(mapped, cell["index"], rank)] = Source(
                    f"{mapped.layout_key}:{where}", read
                )
    return out
