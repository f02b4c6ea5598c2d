"""The cost of the demo's activation atlas (mid: the recipe's points, grid and steps), by
stage: sampling in the dataset pass (with and without class attributions, against the
pass without the map), UMAP (import, numba's compiling, the fit), and drawing the cells,
next to the whole cold demo build.

python bench/maps.py     # prints a table, writes bench/results/maps.json
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from build_demo import machine

from atlas.datasets.examples import run_pass
from atlas.datasets.sampling import MapSamples
from atlas.recipe import load_recipe
from atlas.registry import load_registry

RESULTS = Path(__file__).parent / "results" / "maps.json"


def timed(fn) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - start, 2)


def sampling(registry, recipe) -> tuple[dict, object]:
    """Time the pass over the demo's samples: examples of mid alone, then with the map's
    sampling, then with its class attributions too; return the times and the samples."""
    adapter = registry.load_model(recipe.model)
    dataset = registry.load_dataset(recipe.dataset.source)
    spec, settings = recipe.dataset, recipe.activation_atlas
    layer = settings.layers[0]

    def run(analysis=None):
        subscribed = [(analysis, [layer])] if analysis else []
        return run_pass(adapter, dataset, [layer], spec.samples, spec.top_k, spec.seed,
                        64, "cpu", analyses=subscribed)  # fmt: skip

    _, alone = timed(run)
    plain = MapSamples(settings.points, settings.seed, 0)
    _, sampled = timed(lambda: run(plain))
    coloured = MapSamples(settings.points, settings.seed, 7)
    _, with_classes = timed(lambda: run(coloured))
    times = {
        "layer": layer,
        "images": spec.samples,
        "points": settings.points,
        "pass_without_map_seconds": alone,
        "pass_with_sampling_seconds": sampled,
        "pass_with_sampling_and_classes_seconds": with_classes,
    }
    return times, plain.result(layer)[1]["vectors"]


def umap_times(vectors, settings) -> dict:
    """Time UMAP's import, its first small fit (numba compiling) and the map's fit."""
    _, imported = timed(lambda: __import__("umap"))
    from atlas.maps.layout import layout

    _, first = timed(lambda: layout(vectors[:200], settings.n_neighbors, settings.min_dist, 0))
    _, fit = timed(lambda: layout(vectors, settings.n_neighbors, settings.min_dist, 0))
    return {"import_seconds": imported, "first_fit_seconds": first, "fit_seconds": fit}


def drawing(recipe) -> dict:
    """Build the demo cold; return its time and the seconds its map cells took to draw."""
    import atlas

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        result, whole = timed(
            lambda: atlas.build(
                recipe, cache_dir=folder / "cache", out_dir=folder / "site", show_progress=False
            )
        )
        cells = {t.key for t in result.plan.maps.tasks}
        metas = {p.stem: json.loads(p.read_text()) for p in (folder / "cache").glob("??/*.json")}
        spent = sum(m.get("seconds", 0) for k, m in metas.items() if k in cells)
        units = sum(m.get("seconds", 0) for k, m in metas.items() if k not in cells)
    return {
        "cells": len(cells),
        "steps": recipe.activation_atlas.steps,
        "cells_seconds": round(spent, 1),
        "other_pictures_seconds": round(units, 1),
        "whole_cold_build_seconds": whole,
    }


def main() -> None:
    torch.set_num_threads(2)
    registry = load_registry()
    recipe = load_recipe()
    times, vectors = sampling(registry, recipe)
    result = {
        "benchmark": "maps",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "sampling": times,
        "umap": {"points": len(vectors), **umap_times(vectors, recipe.activation_atlas)},
        "drawing": drawing(recipe),
    }
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    s, u, d = result["sampling"], result["umap"], result["drawing"]
    print(f"sampling {s['points']} points of {s['layer']} from {s['images']} images:")
    print(f"  dataset pass without the map       {s['pass_without_map_seconds']:>7} s")
    print(f"  with sampling                      {s['pass_with_sampling_seconds']:>7} s")
    print(
        f"  with sampling and class colouring  {s['pass_with_sampling_and_classes_seconds']:>7} s"
    )
    print(f"UMAP of {u['points']} points:")
    print(
        f"  import {u['import_seconds']} s, first fit (numba compiling) {u['first_fit_seconds']} s,"
    )
    print(f"  fit {u['fit_seconds']} s")
    print(
        f"drawing {d['cells']} cells at {d['steps']} steps: {d['cells_seconds']} s of optimisation"
    )
    print(f"  (the other pictures: {d['other_pictures_seconds']} s); the whole cold demo build")
    print(f"  {d['whole_cold_build_seconds']} s")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
