"""Concept labels for units, from the labels of the data set the pass reads.

Per-pixel labels get Network Dissection's procedure (Bau et al., CVPR 2017): a threshold per
unit at the 99.5th percentile of its activations over every position of every image (exact:
the top 0.5 % tail is kept), then a second pass that upsamples the unit's map bilinearly to
the label map, masks it where it is above the threshold, and sums per concept the overlap
and the union with the concept's pixels: IoU = Σ|M ∩ L| / Σ|M ∪ L|. A class per image gets
the class selectivity index (Morcos et al., ICLR 2018) over per-class mean activations.

The finding keeps the counts, not the verdict: whether a unit is a detector is decided when
the manifest is made (``unit_concepts``), so changing a threshold recomputes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..recipe.settings import ConceptSettings, DatasetSpec
from .analyses import Analysis
from .labels import BACKGROUND, IMAGE, PIXEL, VOID, Labels
from .stats import RunningTail, RunningTopK, tail_size, unit_values

QUANTILE = 0.005  # NetDissect's QUANTILE: a unit's mask is its top 0.5 % of activations
CHUNK = 1 << 24  # at most this many mask values (images x units x pixels) at once
MAX_LABEL = 1 << 16  # label values above this are refused (a label map of the wrong kind)
TOP = 3  # concepts listed per unit


class _PixelState:
    """One layer's running counts for per-pixel labels."""

    def __init__(self, channels: int, samples: int, top_k: int, quantile: float):
        self.channels, self.samples, self.quantile = channels, samples, quantile
        self.top = RunningTopK(channels, top_k)
        self.tail: RunningTail | None = None
        self.spatial = True
        self.thresholds: torch.Tensor | None = None
        self.intersection = np.zeros((channels, 0))
        self.mask_pixels = np.zeros(channels)
        self.label_pixels = np.zeros(0)
        self.masks: np.ndarray | None = None  # (C, k, H, W) of each unit's top images
        self.wanted: dict[int, list[tuple[int, int]]] = {}  # image -> [(unit, rank)]

    def first(self, act: torch.Tensor, indices: np.ndarray) -> None:
        """Pass 1: keep every unit's highest values and its top images."""
        if act.dim() != 4:
            self.spatial = False
            return
        if self.tail is None:
            positions = self.samples * act.shape[2] * act.shape[3]
            self.tail = RunningTail(self.channels, tail_size(positions, 1 - self.quantile))
        self.tail.update(act.transpose(0, 1).reshape(self.channels, -1))
        values, places = unit_values(act)
        self.top.update(values.cpu().numpy().astype(np.float32), indices, places.cpu().numpy())

    def second(self, act: torch.Tensor, indices: np.ndarray, labels: Sequence) -> None:
        """Pass 2: count, per unit and concept, the mask's pixels, the concept's and both."""
        if not self.spatial:
            return
        if self.thresholds is None:
            self._start(labels[0].shape)
        maps = torch.from_numpy(np.stack(labels)).to(act.device)
        per_image = self.channels * maps.shape[1] * maps.shape[2]
        step = max(1, CHUNK // per_image)
        for start in range(0, len(indices), step):
            end = start + step
            self._count(act[start:end], indices[start:end], maps[start:end])

    def _start(self, shape: tuple[int, int]) -> None:
        """Fix the thresholds and which unit wants which image's mask."""
        self.thresholds = torch.from_numpy(self.tail.quantile(1 - self.quantile).astype(np.float32))
        k = self.top.indices.shape[1]
        self.masks = np.zeros((self.channels, k, *shape), bool)
        for c in range(self.channels):
            for rank in range(k):
                if np.isfinite(self.top.values[c, rank]):
                    self.wanted.setdefault(int(self.top.indices[c, rank]), []).append((c, rank))

    def _count(self, act: torch.Tensor, indices: np.ndarray, maps: torch.Tensor) -> None:
        """Add one chunk of images to the counts: the masks as a (units, pixels) matrix of
        0 and 1 times a (pixels, labels) one-hot matrix (plus a column of valid pixels)."""
        units = act.float().contiguous(memory_format=torch.channels_last)  # pixels, then units
        on = F.interpolate(units, size=maps.shape[-2:], mode="bilinear", align_corners=False)
        on.gt_(self.thresholds.to(act.device).view(1, -1, 1, 1))  # NetDissect's strict >
        for i, index in enumerate(indices):
            for c, rank in self.wanted.get(int(index), ()):
                self.masks[c, rank] = on[i, c].cpu().numpy() > 0
        flat = maps.reshape(-1)
        valid = (flat >= 0) & (flat != VOID)
        present = torch.unique(flat[valid])
        if len(present) and int(present.max()) >= MAX_LABEL:
            raise ValueError(f"label value {int(present.max())} is too large for a class")
        columns = torch.cat([(flat[:, None] == present) & valid[:, None], valid[:, None]], 1)
        pixels = on.permute(0, 2, 3, 1).reshape(-1, on.shape[1])  # (B·H·W, C), no copy
        counts = (columns.float().T @ pixels).T  # (C, labels present + 1); this way round
        # a skinny product runs at memory speed (the other is ten times slower on CPU)
        self.mask_pixels += counts[:, -1].cpu().numpy()
        if len(present):
            self._grow(int(present.max()) + 1)
            where = present.cpu().numpy()
            self.intersection[:, where] += counts[:, :-1].cpu().numpy()
            self.label_pixels[where] += columns[:, :-1].sum(0).cpu().numpy()

    def _grow(self, classes: int) -> None:
        """Make room for label values below classes."""
        extra = classes - self.label_pixels.shape[0]
        if extra > 0:
            self.intersection = np.pad(self.intersection, ((0, 0), (0, extra)))
            self.label_pixels = np.pad(self.label_pixels, (0, extra))

    def result(self) -> tuple[dict, dict[str, np.ndarray]]:
        if not self.spatial or self.masks is None:
            return {"spatial": False}, {}
        meta = {"spatial": True, "positions": self.tail.count, "mask_shape": self.masks.shape[2:]}
        return meta, {
            "thresholds": self.thresholds.numpy(),
            "intersection": self.intersection,
            "mask_pixels": self.mask_pixels,
            "label_pixels": self.label_pixels,
            "masks": np.packbits(self.masks, axis=-1),
            "mask_index": self.top.indices,
        }


class _ImageState:
    """One layer's per-class sums of unit values for a class per image."""

    def __init__(self, channels: int):
        self.sums = np.zeros((0, channels))
        self.counts = np.zeros(0)
        self.indices: list[int] = []
        self.labels: list[int] = []

    def first(self, act: torch.Tensor, indices: np.ndarray, labels: Sequence) -> None:
        values = unit_values(act)[0].cpu().numpy().astype(np.float64)
        classes = np.asarray([int(label) for label in labels])
        if len(classes) and (classes.min() < 0 or classes.max() >= MAX_LABEL):
            raise ValueError(f"class index {classes.min()} .. {classes.max()} out of range")
        extra = int(classes.max()) + 1 - len(self.counts) if len(classes) else 0
        if extra > 0:
            self.sums = np.pad(self.sums, ((0, extra), (0, 0)))
            self.counts = np.pad(self.counts, (0, extra))
        np.add.at(self.sums, classes, values)
        np.add.at(self.counts, classes, 1)
        self.indices += [int(i) for i in indices]
        self.labels += classes.tolist()

    def result(self) -> tuple[dict, dict[str, np.ndarray]]:
        return {"spatial": True}, {
            "class_sums": self.sums,
            "class_counts": self.counts,
            "image_index": np.asarray(self.indices, np.int64),
            "image_label": np.asarray(self.labels, np.int64),
        }


class Concepts(Analysis):
    """Score every unit against the data set's classes: IoU for label maps, class
    selectivity for a class per image."""

    name = "concepts"
    version = "1"

    def __init__(
        self,
        labels: str,
        classes: Sequence[str] = (),
        top_k: int = 9,
        quantile: float = QUANTILE,
    ):
        super().__init__(labels=labels, classes=tuple(classes), top_k=top_k, quantile=quantile)
        self.kind, self.classes = labels, tuple(classes)
        self.top_k, self.quantile = top_k, quantile
        self.passes = 2 if labels == PIXEL else 1
        self.pass_names = ("thresholds", "masks") if labels == PIXEL else ("class means",)
        self.states: dict[str, _PixelState | _ImageState] = {}

    @classmethod
    def wants(cls, spec: DatasetSpec, labels: Labels) -> dict | None:
        """Run whenever the data set has labels, unless the recipe says concepts = false."""
        if not spec.concepts.enabled or labels.kind not in (PIXEL, IMAGE):
            return None
        settings = {"labels": labels.kind, "classes": labels.classes}
        if labels.kind == PIXEL:
            settings.update(top_k=spec.top_k, quantile=QUANTILE)
        return settings

    def describe(self) -> str:
        if self.kind == PIXEL:
            return "concepts: per-pixel labels, NetDissect IoU"
        return "concepts: a class per image, class selectivity"

    def begin(self, layer: str, channels: int, samples: int) -> None:
        if self.kind == PIXEL:
            self.states[layer] = _PixelState(channels, samples, self.top_k, self.quantile)
        else:
            self.states[layer] = _ImageState(channels)

    def update(self, layer, act, indices, labels, pass_index) -> None:
        state = self.states[layer]
        if isinstance(state, _ImageState):
            state.first(act, indices, labels)
        elif pass_index == 0:
            state.first(act, indices)
        else:
            state.second(act, indices, labels)

    def result(self, layer: str) -> tuple[dict, dict[str, np.ndarray]]:
        meta, arrays = self.states[layer].result()
        kind = "iou" if self.kind == PIXEL else "selectivity"
        return {"kind": kind, "classes": list(self.classes), **meta}, arrays


@dataclass(frozen=True)
class UnitConcepts:
    """What the finding says of one unit: its best concepts (best first) and the one it
    detects, if any."""

    concepts: list[dict]
    concept: str | None


def _name(classes: Sequence[str], value: int) -> str:
    return classes[value] if 0 <= value < len(classes) else str(value)


def iou_scores(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Return the (units, labels) IoU of each unit's mask with each label, over the data."""
    both = arrays["intersection"]
    union = arrays["mask_pixels"][:, None] + arrays["label_pixels"][None, :] - both
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, both / np.maximum(union, 1e-12), 0.0)


def _iou_concepts(meta: dict, arrays: dict, settings: ConceptSettings) -> list[UnitConcepts]:
    """Per unit: the labels its mask overlaps most (background never), best first."""
    iou = iou_scores(arrays)
    if iou.shape[1] > BACKGROUND:
        iou[:, BACKGROUND] = 0.0
    out = []
    for row in iou:
        order = [k for k in np.argsort(-row, kind="stable")[:TOP] if row[k] > 0]
        concepts = [
            {
                "name": _name(meta["classes"], int(k)),
                "score": round(float(row[k]), 4),
                "kind": "iou",
            }
            for k in order
        ]
        best = concepts[0] if concepts and concepts[0]["score"] >= settings.iou else None
        out.append(UnitConcepts(concepts, best["name"] if best else None))
    return out


def selectivity(means: np.ndarray) -> np.ndarray:
    """Return each class's selectivity index per unit from (classes, units) mean values:
    (μ_c − μ_rest) / (μ_c + μ_rest), NaN where the denominator is 0 or below."""
    k = means.shape[0]
    rest = (means.sum(0, keepdims=True) - means) / max(k - 1, 1)
    total = means + rest
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (means - rest) / np.where(total > 0, total, 1.0), np.nan)


def _image_concepts(
    meta: dict, arrays: dict, settings: ConceptSettings, examples: dict | None
) -> list[UnitConcepts]:
    """Per unit: the classes it is most selective for, with their share of its top
    examples; a detector when both pass the thresholds."""
    seen = arrays["class_counts"] > 0
    classes = np.flatnonzero(seen)
    means = arrays["class_sums"][seen] / arrays["class_counts"][seen][:, None]
    index = selectivity(means)
    label_of = dict(
        zip(arrays["image_index"].tolist(), arrays["image_label"].tolist(), strict=True)
    )
    out = []
    for unit in range(means.shape[1]):
        top = [e["index"] for e in examples["units"][unit]["examples"]] if examples else []
        labels = [label_of.get(i) for i in top]
        concepts = []
        for row in np.argsort(-means[:, unit], kind="stable")[:TOP]:
            value = index[row, unit]
            share = labels.count(int(classes[row])) / len(labels) if labels else None
            concepts.append(
                {
                    "name": _name(meta["classes"], int(classes[row])),
                    "score": None if np.isnan(value) else round(float(value), 4),
                    "kind": "selectivity",
                    "share": None if share is None else round(share, 4),
                }
            )
        best = concepts[0] if concepts else None
        detects = (
            best is not None
            and best["score"] is not None
            and best["score"] >= settings.selectivity
            and (best["share"] or 0) >= settings.share
        )
        out.append(UnitConcepts(concepts, best["name"] if detects else None))
    return out


def unit_concepts(
    meta: dict, arrays: dict, settings: ConceptSettings, examples: dict | None = None
) -> list[UnitConcepts]:
    """Return every unit's concepts from a layer's finding (empty without a spatial map)."""
    if not meta.get("spatial"):
        return []
    if meta["kind"] == "iou":
        return _iou_concepts(meta, arrays, settings)
    return _image_concepts(meta, arrays, settings, examples)


def layer_summary(units: Sequence[UnitConcepts | None], total: int) -> dict:
    """Return NetDissect's per-layer summary: detectors, distinct concepts, and units per
    concept (most first)."""
    counts: dict[str, int] = {}
    for unit in units:
        if unit is not None and unit.concept is not None:
            counts[unit.concept] = counts.get(unit.concept, 0) + 1
    by_concept = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    return {
        "units": total,
        "detectors": sum(counts.values()),
        "unique_concepts": len(counts),
        "by_concept": by_concept,
    }


def unit_mask(arrays: dict, meta: dict, unit: int, rank: int, index: int) -> np.ndarray | None:
    """Return the unit's mask on its rank-th top image (H, W bool), if the finding has it."""
    if "masks" not in arrays or arrays["mask_index"][unit, rank] != index:
        return None
    h, w = meta["mask_shape"]
    return np.unpackbits(arrays["masks"][unit, rank], axis=-1, count=w).astype(bool)[:h]
