"""The pictures a build hands to the site, as sources known by their cache keys: stored
pictures, and dataset example crops (drawn with their unit's mask where concept labels
give one). Nothing is read until the site needs a file it does not have."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path

from ..datasets.concepts import unit_mask
from ..datasets.examples import crop_box
from ..site import Source
from ..store.cache import Entry
from ..store.findings import Finding
from .gather import example_file_key
from .labelling import masked_crop
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
