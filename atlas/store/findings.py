"""The findings store: what the dataset pass found, per layer, under <cache>/examples/<key>/
(PNG crops, then meta.json last); and the records a worker sends back for it."""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..images import encode_png
from .cache import atomic_write, digest

EXAMPLES_VERSION = "1"  # bump when a change alters what the pass finds


@dataclass
class LayerExamples:
    """What the pass found for one layer (arrays are per channel, best first)."""

    values: np.ndarray  # (C, k)
    indices: np.ndarray  # (C, k)
    positions: np.ndarray  # (C, k, 2) row, column in the activation grid (-1: none)
    max: np.ndarray
    mean: np.ndarray
    p99: np.ndarray
    samples: int
    grid: tuple[int, int] | None  # the activation's spatial size, None if it has none


@dataclass
class LayerFindings:
    """One layer's findings, ready for the store: what the client writes to the cache."""

    key: str
    layer: str
    found: LayerExamples
    crops: dict[tuple[int, int], np.ndarray]
    extra: dict


def findings_key(
    model: dict, input_spec: dict, dataset: dict, layer: str, tokens: str | None = None
) -> str:
    """Return the cache key of one layer's dataset examples (tokens: how a token layer's
    channel pools its tokens, for token layers only: other keys are as they were)."""
    content = {
        "model": model,
        "input": input_spec,
        "dataset": dataset,
        "layer": layer,
        "version": EXAMPLES_VERSION,
    }
    if tokens:
        content["tokens"] = tokens
    return digest(content)


class FindingsStore:
    """Each layer's findings under <cache>/examples/<key>/: PNG crops and meta.json last."""

    def __init__(self, root: str | Path):
        self.root = Path(root) / "examples"

    def folder(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> dict | None:
        """Return a layer's stored findings (with absolute crop paths), or None if its
        meta.json or any crop is missing."""
        folder = self.folder(key)
        try:
            meta = json.loads((folder / "meta.json").read_text())
            names = set(os.listdir(folder))
        except (OSError, ValueError):
            return None
        prefix = f"{folder}{os.sep}"
        for unit in meta["units"]:
            for example in unit["examples"]:
                if example["file"] not in names:
                    return None
                example["file"] = prefix + example["file"]
        with contextlib.suppress(OSError):  # mark it used, for `atlas cache prune --older-than`
            os.utime(folder / "meta.json")
        return meta

    def put(self, findings: LayerFindings) -> None:
        """Write the crops of every unit's examples, then the layer's meta.json."""
        key, layer, found, crops = findings.key, findings.layer, findings.found, findings.crops
        extra = findings.extra
        folder = self.folder(key)
        units = []
        for c in range(found.values.shape[0]):
            examples = []
            for rank in range(found.values.shape[1]):
                if not np.isfinite(found.values[c, rank]):
                    continue
                name = f"{c}-{rank}.png"
                atomic_write(folder / name, encode_png(crops[(c, rank)]))
                examples.append(
                    {
                        "file": name,
                        "value": round(float(found.values[c, rank]), 5),
                        "index": int(found.indices[c, rank]),
                        "position": [int(v) for v in found.positions[c, rank]],
                    }
                )
            units.append(
                {
                    "channel": c,
                    "examples": examples,
                    "max": float(found.max[c]),
                    "mean": float(found.mean[c]),
                    "p99": float(found.p99[c]),
                }
            )
        meta = {"layer": layer, "samples": found.samples, "units": units, **extra}
        atomic_write(folder / "meta.json", json.dumps(meta).encode())


@dataclass
class Finding:
    """One layer's result of one analysis of the dataset pass: plain data and named arrays."""

    key: str
    analysis: str
    layer: str
    meta: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    model: dict = field(default_factory=dict)  # the weights' identity, for `atlas cache info`


def analysis_key(
    model: dict, input_spec: dict, dataset: dict, layer: str, analysis: dict, version: str
) -> str:
    """Return the cache key of one layer's finding of one analysis."""
    return digest(
        {
            "model": model,
            "input": input_spec,
            "dataset": dataset,
            "layer": layer,
            "analysis": analysis,
            "version": version,
        }
    )


class AnalysisStore:
    """Each finding under <cache>/analyses/<name>/<key>/: arrays.npz, then meta.json last."""

    def __init__(self, root: str | Path):
        self.root = Path(root) / "analyses"

    def folder(self, name: str, key: str) -> Path:
        return self.root / name / key[:2] / key

    def get(self, name: str, key: str) -> Finding | None:
        """Return a stored finding, or None if it is missing or damaged."""
        folder = self.folder(name, key)
        try:
            meta = json.loads((folder / "meta.json").read_text())
            with np.load(folder / "arrays.npz", allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, KeyError):
            return None
        with contextlib.suppress(OSError):  # mark it used, for `atlas cache prune --older-than`
            os.utime(folder / "meta.json")
        return Finding(key, name, meta["layer"], meta["data"], arrays, meta.get("model", {}))

    def put(self, finding: Finding) -> None:
        """Write a finding's arrays, then its meta.json."""
        folder = self.folder(finding.analysis, finding.key)
        buffer = io.BytesIO()
        np.savez(buffer, **finding.arrays)
        atomic_write(folder / "arrays.npz", buffer.getvalue())
        meta = {
            "layer": finding.layer,
            "analysis": finding.analysis,
            "model": finding.model,
            "data": finding.meta,
        }
        atomic_write(folder / "meta.json", json.dumps(meta).encode())
