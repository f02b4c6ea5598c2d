"""The findings store: what the dataset pass found, per layer, under <cache>/examples/<key>/
(PNG crops, then meta.json last); and the records a worker sends back for it."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
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


def findings_key(model: dict, input_spec: dict, dataset: dict, layer: str) -> str:
    """Return the cache key of one layer's dataset examples."""
    return digest(
        {
            "model": model,
            "input": input_spec,
            "dataset": dataset,
            "layer": layer,
            "version": EXAMPLES_VERSION,
        }
    )


class FindingsStore:
    """Each layer's findings under <cache>/examples/<key>/: PNG crops and meta.json last."""

    def __init__(self, root: str | Path):
        self.root = Path(root) / "examples"

    def folder(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> dict | None:
        """Return a layer's stored findings (with absolute crop paths), or None."""
        try:
            meta = json.loads((self.folder(key) / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        for unit in meta["units"]:
            for example in unit["examples"]:
                example["file"] = str(self.folder(key) / example["file"])
                if not Path(example["file"]).is_file():
                    return None
        with contextlib.suppress(OSError):  # mark it used, for `atlas cache prune --older-than`
            os.utime(self.folder(key) / "meta.json")
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
