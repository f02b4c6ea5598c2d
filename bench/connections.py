"""The cost of connections, measured: on the demo next to its optimisation (enc2 -> mid ->
output, both methods), and ResNet-18 (random weights) layer3 -> layer4 over 200 generated
images at 224 px, both methods.

python bench/connections.py     # prints a table, writes bench/results/connections.json
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from build_demo import machine

from atlas.datasets.connections import attributions, expanded_weights
from atlas.datasets.examples import run_pass
from atlas.recipe import load_recipe
from atlas.registry import load_registry

RESULTS = Path(__file__).parent / "results" / "connections.json"


def both_methods(adapter, dataset, pairs, samples: int, top_k: int, batch: int) -> dict:
    """Time the dataset pass that finds the top examples, then each pair by both methods."""
    layers = sorted({layer for layer, _ in pairs})
    start = time.perf_counter()
    found, _ = run_pass(adapter, dataset, layers, samples, top_k, batch_size=batch)
    timed = {"pass_seconds": round(time.perf_counter() - start, 2), "pairs": {}}
    for layer, source in pairs:
        examples = found[layer].indices.copy()
        examples[~np.isfinite(found[layer].values)] = -1
        units = examples.shape[0]
        start = time.perf_counter()
        attributions(adapter, dataset, source, layer, examples, batch, "cpu")
        data = time.perf_counter() - start
        start = time.perf_counter()
        expanded_weights(adapter, source, layer, units, batch, "cpu")
        weights = time.perf_counter() - start
        timed["pairs"][f"{source} -> {layer}"] = {
            "units": units,
            "pairs_differentiated": int((examples >= 0).sum()),
            "data_seconds": round(data, 2),
            "weights_seconds": round(weights, 2),
        }
    return timed


def demo(registry) -> dict:
    """The demo's connections, next to the seconds its pictures took to optimise."""
    recipe = load_recipe()
    adapter = registry.load_model(recipe.model)
    dataset = registry.load_dataset(recipe.dataset.source)
    pairs = [("mid", "enc2"), ("output", "mid")]
    result = both_methods(adapter, dataset, pairs, recipe.dataset.samples, recipe.dataset.top_k, 64)
    with tempfile.TemporaryDirectory() as tmp:
        import atlas

        start = time.perf_counter()
        folder = Path(tmp)
        atlas.build(
            recipe, cache_dir=folder / "cache", out_dir=folder / "site", show_progress=False
        )
        result["whole_build_seconds"] = round(time.perf_counter() - start, 1)
        metas = [json.loads(p.read_text()) for p in (folder / "cache").glob("??/*.json")]
        result["optimisation_seconds"] = round(sum(m.get("seconds", 0) for m in metas), 1)
    return result


class Generated:
    """The demo's generated shapes images (64 px; the pass resizes them to 224)."""

    def __init__(self, shapes):
        self.shapes = shapes

    def __len__(self):
        return 200

    def __getitem__(self, index):
        return self.shapes[index][0], None

    def identity(self):
        return {"generated": 200}


def resnet(registry) -> dict:
    """ResNet-18, random weights: layer3 -> layer4 over 200 images at 224 px."""
    adapter = registry.load_model("torchvision/resnet18", "none")
    dataset = Generated(registry.load_dataset("shapes/val"))
    return both_methods(adapter, dataset, [("layer4", "layer3")], 200, 9, 32)


def main() -> None:
    torch.set_num_threads(2)
    registry = load_registry()
    result = {
        "benchmark": "connections",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "demo": demo(registry),
        "resnet18": resnet(registry),
    }
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    for name in ("demo", "resnet18"):
        part = result[name]
        print(f"{name}: dataset pass {part['pass_seconds']} s")
        for pair, t in part["pairs"].items():
            sizes = f"{t['units']:>4} units, {t['pairs_differentiated']:>5} (unit, image) pairs"
            times = f"data {t['data_seconds']} s, weights {t['weights_seconds']} s"
            print(f"  {pair:<18} {sizes}: {times}")
    spent = result["demo"]
    print(
        f"demo: its pictures took {spent['optimisation_seconds']} s to optimise, the whole "
        f"build {spent['whole_build_seconds']} s"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
