"""Concept labels in the manifest: each unit's concepts, each layer's summary, and the
dataset examples drawn as Network Dissection draws them (the unit's mask as alpha)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from ..datasets.concepts import UnitConcepts, layer_summary, unit_concepts
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
        out[layer.name] = (units, layer_summary(units[:total], total))  # the units shown
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


def masked_crop(path: str | Path, mask: np.ndarray) -> bytes | None:
    """Return the crop's PNG with alpha 255 inside the mask and DIM outside it."""
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if pixels is None or pixels.shape[:2] != mask.shape:
        return None
    alpha = np.where(mask, 255, round(255 * DIM)).astype(np.uint8)
    ok, data = cv2.imencode(".png", np.dstack([pixels, alpha]))
    return data.tobytes() if ok else None
