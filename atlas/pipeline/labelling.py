"""Concept labels in the manifest: each unit's concepts, each layer's summary, and the
dataset examples drawn as Network Dissection draws them (the unit's mask as alpha)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import cv2
import numpy as np

from ..datasets.concepts import UnitConcepts, layer_summary, unit_concepts, unit_mask
from ..datasets.examples import crop_box
from ..models.layers import LayerInfo
from ..store.findings import Finding
from .plan import Plan

NAME = "concepts"  # the analysis whose findings these are
DIM = 0.2  # NetDissect's strips show pixels outside a unit's mask at 20 %


def concept_findings(analyses: Mapping[str, Mapping[str, Finding]]) -> Mapping[str, Finding]:
    """Return the concept finding of each layer that has one."""
    return analyses.get(NAME, {})


def layer_concepts(
    plan: Plan, findings: Mapping[str, Finding], examples: Mapping[str, dict]
) -> dict[str, tuple[list[UnitConcepts], dict]]:
    """Return each scored layer's per-unit concepts and its summary."""
    if plan.dataset is None:
        return {}
    settings = plan.dataset.spec.concepts
    out = {}
    for layer in plan.layers:
        finding = findings.get(layer.name)
        if finding is None:
            continue
        units = unit_concepts(finding.meta, finding.arrays, settings, examples.get(layer.name))
        total = min(layer.channels, plan.recipe.max_channels or layer.channels)
        out[layer.name] = (units, layer_summary(units, total))
    return out


def concepts_record(plan: Plan, findings: Mapping[str, Finding]) -> dict | None:
    """Return the manifest's top-level facts about concept labels (None: there are none)."""
    if plan.dataset is None or not findings:
        return None
    meta = next(iter(findings.values())).meta
    return {
        "kind": meta["kind"],
        "source": plan.dataset.spec.source,
        "classes": meta["classes"],
        **plan.dataset.spec.concepts.as_dict(),
    }


def _grid(layer: LayerInfo) -> tuple[int, int] | None:
    """Return the layer's spatial size, if it has one."""
    return tuple(layer.shape[1:]) if len(layer.shape) == 3 else None


def masked_crop(path: str | Path, mask: np.ndarray) -> bytes | None:
    """Return the crop's PNG with alpha 255 inside the mask and DIM outside it."""
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if pixels is None or pixels.shape[:2] != mask.shape:
        return None
    alpha = np.where(mask, 255, round(255 * DIM)).astype(np.uint8)
    ok, data = cv2.imencode(".png", np.dstack([pixels, alpha]))
    return data.tobytes() if ok else None


def masked_examples(
    plan: Plan,
    findings: Mapping[str, Finding],
    examples: Mapping[str, dict],
    key: Callable[[str, int, int], str],
) -> dict[str, bytes]:
    """Return every example crop that has its unit's mask, as PNG bytes with that mask as
    alpha, by the example's file key (``key(layer, channel, rank)``)."""
    size = tuple(plan.adapter.input.size)
    out = {}
    for layer in plan.layers:
        finding, found = findings.get(layer.name), examples.get(layer.name)
        if finding is None or found is None or "masks" not in finding.arrays:
            continue
        field = tuple(found.get("field", size))
        for unit in found["units"]:
            for rank, example in enumerate(unit["examples"]):
                mask = unit_mask(
                    finding.arrays, finding.meta, unit["channel"], rank, example["index"]
                )
                if mask is None:
                    continue
                top, left, h, w = crop_box(example["position"], _grid(layer), field, size)
                data = masked_crop(example["file"], mask[top : top + h, left : left + w])
                if data is not None:
                    out[key(layer.name, unit["channel"], rank)] = data
    return out
