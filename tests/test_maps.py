"""The activation atlas: sampling, layout, cells, whitening, class colouring, the cell
pictures and the cache (the session's one build with a map: the ``mapped`` fixture)."""

from __future__ import annotations

import json
import re
import shutil
import sys

import cv2
import numpy as np
import pytest
import torch
from helpers import MAPPED, TINY, atlas, atlas_build, broken_links, links, recipe_toml
from torch import nn

from atlas.datasets import sampling
from atlas.datasets.examples import run_pass
from atlas.datasets.sampling import NAME, MapSamples
from atlas.engine.objectives import Direction
from atlas.errors import RecipeError
from atlas.maps.cells import grid_cells
from atlas.maps.layout import layout
from atlas.maps.whitening import whitening
from atlas.models.adapter import InputSpec, ModelAdapter
from atlas.models.layers import OUTPUT, Probe
from atlas.pipeline.build import plan_build
from atlas.pipeline.maps import LAYOUT
from atlas.recipe import load_recipe, parse_recipe
from atlas.registry import load_registry
from atlas.store.cache import Cache
from atlas.store.findings import AnalysisStore


def sampled(seed: int, batches: list[int], points: int = 40, images: int = 8):
    """Return the sampling finding of a random 4-channel 6x6 layer, fed in batches."""
    torch.manual_seed(0)
    act = torch.rand(images, 4, 6, 6)
    analysis = MapSamples(points=points, seed=seed)
    analysis.begin("l", 4, images)
    start = 0
    for size in batches:
        rows = np.arange(start, start + size)
        analysis.update("l", act[start : start + size], rows, [None] * size, 0)
        start += size
    return analysis.result("l"), act


def test_sampling_avoids_edges_is_seeded_and_does_not_depend_on_batches():
    (meta, arrays), act = sampled(seed=1, batches=[8])
    assert meta["points"] == 40 and arrays["vectors"].shape == (40, 4)
    places = arrays["positions"]
    assert places.min() >= 1 and places.max() <= 4  # never row or column 0 or 5
    per_image = np.bincount(arrays["images"])
    assert (per_image == 5).all()  # 40 points from 8 images: 5 distinct positions each
    for image in range(8):
        mine = places[arrays["images"] == image]
        assert len({tuple(p) for p in mine}) == 5
    i, (y, x) = arrays["images"][7], places[7]
    np.testing.assert_array_equal(arrays["vectors"][7], act[i, :, y, x].numpy())
    (_, again), _ = sampled(seed=1, batches=[3, 2, 3])
    for name in ("vectors", "images", "positions"):
        np.testing.assert_array_equal(arrays[name], again[name])
    (_, other), _ = sampled(seed=2, batches=[8])
    assert not np.array_equal(arrays["positions"], other["positions"])


def test_cells_with_five_points_or_fewer_are_dropped():
    rng = np.random.default_rng(0)
    coords = np.array([[0.1, 0.1]] * 6 + [[0.9, 0.9]] * 5, np.float32)
    vectors = rng.random((11, 3)).astype(np.float32)
    (cell,) = grid_cells(coords, vectors, grid=2)
    assert (cell.column, cell.row, cell.count) == (0, 0, 6)
    assert (cell.x, cell.y) == (0.25, 0.25)
    np.testing.assert_allclose(cell.mean, vectors[:6].mean(0), rtol=1e-6)
    assert len(cell.nearest) == 3 and set(cell.nearest) <= set(range(6))


def test_whitening_equals_the_formula():
    a = np.array([[1.0, 2.0, 0.0], [3.0, -1.0, 0.0], [0.5, 0.5, 0.0], [2.0, 1.0, 0.0]])
    gram = a.T @ a / 4
    eps = 0.01 * np.mean(np.diag(gram))
    expected = np.linalg.inv(gram + eps * np.eye(3))
    np.testing.assert_allclose(whitening(a, ridge=0.01), expected, rtol=1e-10)
    full = a[:, :2]  # no dead channel: with no ridge it is the article's inv(AᵀA / N)
    np.testing.assert_allclose(whitening(full, ridge=0.0), np.linalg.inv(full.T @ full / 4))
    assert np.isfinite(whitening(a)).all()  # the dead third channel keeps S finite


def test_a_batch_of_directions_at_the_centre_is_one_gather():
    torch.manual_seed(0)
    act = torch.randn(3, 4, 5, 5)
    vectors = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    parts = [Direction("l", v, 2.0, x="centre", y="centre") for v in vectors]
    merged = Direction.merge(parts, [1, 1, 1])
    alone = torch.stack([p({"l": act[i : i + 1]})[0] for i, p in enumerate(parts)])
    torch.testing.assert_close(merged({"l": act}), alone)
    centre = act[0, :, 2, 2]
    unit = torch.from_numpy(vectors[0] / np.linalg.norm(vectors[0]))
    dot = centre @ unit
    cos = (dot / centre.norm()).clamp_min(0.1)
    torch.testing.assert_close(alone[0], dot * cos**2)
    assert Direction.merge([parts[0], Direction("l", vectors[1])], [1, 1]) is None


class KnownLogits(nn.Module):
    """A feature map whose per-pixel class logits are a known linear map of it."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.features = nn.Conv2d(3, 3, 3, padding=1)
        self.head = nn.Conv2d(3, weight.shape[0], 1, bias=False)
        self.head.weight.data = weight[:, :, None, None]

    def forward(self, x):
        return self.head(self.features(x))


class Noise:
    """A data set of seeded noise images without labels."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int):
        rng = np.random.default_rng(index)
        return rng.random((16, 16, 3)).astype(np.float32), None

    def identity(self) -> dict:
        return {"noise": 12}


@pytest.mark.parametrize("mode", ["forward", "backward"])
def test_class_colouring_reads_h_times_the_gradient_of_each_class(mode, monkeypatch):
    monkeypatch.setattr(sampling, "BACKWARD_AT", 0 if mode == "forward" else 100)
    torch.manual_seed(0)
    weight = torch.randn(4, 3)
    adapter = ModelAdapter(
        KnownLogits(weight),
        source="test/known",
        input=InputSpec(channels=3, size=(16, 16)),
        weights_digest="known",
        labels={OUTPUT: ["a", "b", "c", "d"]},
    )
    analysis = MapSamples(points=36, seed=0, classes=4)
    run_pass(adapter, Noise(), [], 12, 1, batch_size=5, analyses=[(analysis, ["features"])])
    _, arrays = analysis.result("features")
    # mean over 16x16 pixels of logit_c = W_c · h: its gradient at one position is W_c / 256
    expected = arrays["vectors"] @ weight.numpy().T / 256
    np.testing.assert_allclose(arrays["attributions"], expected, rtol=1e-4, atol=1e-7)
    assert arrays["attributions"].shape == (36, 4)


def test_the_table_is_checked_and_needs_a_dataset():
    with pytest.raises(RecipeError, match=r"\[activation_atlas\] needs a \[dataset\] table"):
        parse_recipe({**TINY, "activation_atlas": {"layers": ["mid"]}}, "r")
    bad = {"layers": ["mid"], "grid": 1}
    with pytest.raises(RecipeError, match=r"'activation_atlas.grid' must be from 2 to 160"):
        parse_recipe({**MAPPED, "activation_atlas": bad}, "r")
    with pytest.raises(RecipeError, match=r"unknown key 'activation_atlas\.cells'"):
        parse_recipe({**MAPPED, "activation_atlas": {"layers": ["mid"], "cells": 3}}, "r")


def test_without_umap_learn_the_error_names_the_extra(monkeypatch):
    from atlas.errors import AtlasError
    from atlas.maps.layout import umap_class

    monkeypatch.setitem(sys.modules, "umap", None)  # as if it were not installed
    with pytest.raises(AtlasError, match=re.escape("pip install 'feature-atlas[maps]'")):
        umap_class()


def test_a_layer_that_is_not_a_feature_map_is_refused(tmp_path, registry):
    data = {
        "layers": ["conv1"],
        "model": {"source": "test/tiny"},
        "dataset": {"source": "shapes/val", "samples": 8},
        "activation_atlas": {"layers": ["fc"]},
    }
    recipe = parse_recipe(data, "r.toml")
    with pytest.raises(RecipeError, match=r"'fc' gives .* not a feature map"):
        plan_build(recipe, Cache(tmp_path), registry)


def test_samples_that_would_not_fit_in_memory_are_refused(tmp_path, registry, monkeypatch):
    from atlas.pipeline import maps

    monkeypatch.setattr(maps, "MAX_SAMPLE_BYTES", 1000)
    data = {
        "layers": ["conv1"],
        "model": {"source": "test/tiny"},
        "dataset": {"source": "shapes/val", "samples": 8},
        "activation_atlas": {"layers": ["conv2"], "points": 100},  # 100 x 6 channels x 4
    }
    with pytest.raises(RecipeError, match=r"'activation_atlas\.points': 100 activations"):
        plan_build(parse_recipe(data, "r.toml"), Cache(tmp_path), registry)


# The session's build with a map.

e2e = pytest.mark.e2e


def manifest_of(built) -> dict:
    return json.loads((built.site / "manifest.json").read_text())


@e2e
def test_the_map_is_built_with_cells_patches_classes_and_links(mapped):
    site = mapped.site
    atlas_map = manifest_of(mapped)["activation_atlas"]["mid"]
    assert atlas_map["grid"] == 5 and atlas_map["page"] == "maps/mid.html"
    assert atlas_map["layout"] == {
        "n_neighbors": 50,
        "min_dist": 0.05,
        "metric": "cosine",
        "seed": 0,
        "points": 600,
    }
    cells = atlas_map["cells"]
    assert 3 <= len(cells) <= 25 and all(c["count"] > 5 for c in cells)
    assert sum(c["count"] for c in cells) <= 600
    classes = set(atlas_map["classes"])
    assert len(classes) == 7 and all(c["class"] in classes for c in cells)
    for cell in cells:
        assert (site / cell["image"]).is_file() and (site / cell["page"]).is_file()
        assert len(cell["patches"]) == 3 and (site / cell["patches"][0]["image"]).is_file()
        assert cell["units"] and cell["units"][0]["page"].startswith("units/mid/")
    strip = cv2.imread(str(site / cells[0]["patches"][0]["image"]), cv2.IMREAD_UNCHANGED)
    assert strip.shape[1] == cells[0]["patches"][0]["size"][0] and strip.std() > 0
    assert "maps/mid.html" in links(site / "index.html")
    assert "../maps/mid.html" in links(site / "layers" / "mid.html")
    assert broken_links(site) == []


@e2e
def test_the_layout_is_reproducible_for_its_seed(mapped):
    plan = plan_build(load_recipe(mapped.recipe), Cache(mapped.cache), load_registry())
    (mapped_layer,) = plan.maps.layers
    store = AnalysisStore(mapped.cache)
    samples = store.get(NAME, mapped_layer.samples_key).arrays["vectors"]
    stored = store.get(LAYOUT, mapped_layer.layout_key).arrays["coords"]
    again = layout(samples, 50, 0.05, seed=0)  # in this process; the build ran its own
    np.testing.assert_allclose(again, stored, atol=1e-5)
    assert stored.min() == 0 and stored.max() == 1


@e2e
def test_a_cells_picture_raises_its_direction_more_than_other_cells_pictures(mapped):
    plan = plan_build(load_recipe(mapped.recipe), Cache(mapped.cache), load_registry())
    (mapped_layer,) = plan.maps.layers
    cells = manifest_of(mapped)["activation_atlas"]["mid"]["cells"]
    pictures = []
    for cell in cells:
        bgr = cv2.imread(str(mapped.site / cell["image"]))
        pictures.append(torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1) / 255.0)
    x = plan.adapter.input.normalize(torch.stack(pictures).float())
    with Probe(plan.adapter, ["mid"]) as probe, torch.no_grad():
        acts = probe(x)
    scores = np.array([task.objective(acts).numpy() for task in mapped_layer.tasks])
    own = np.diag(scores)
    others = (scores.sum(1) - own) / (len(cells) - 1)
    assert (own > others).mean() >= 0.7 and own.mean() > 2 * others.mean(), (own, others)


@e2e
def test_a_rebuild_computes_nothing_and_a_new_grid_runs_no_umap(mapped, tmp_path):
    shutil.copytree(mapped.cache, tmp_path / "cache")
    keep = ("cache", "prune", "--keep", str(mapped.recipe), "--dry-run")
    pruned = atlas(*keep, "--cache-dir", str(tmp_path / "cache")).stdout
    assert pruned.startswith("would remove 0 pictures and 0 layers of dataset examples, 0 analysis")
    args = ("--dry-run", "--json", "--cache-dir", str(tmp_path / "cache"))
    plan = json.loads(atlas("build", str(mapped.recipe), *args).stdout)
    shown = plan["activation_atlas"]["mid"]
    assert shown["laid_out"] and shown["cached"] and shown["cells_to_compute"] == 0
    assert plan["units_to_compute"] == 0
    text = atlas("build", str(mapped.recipe), *args[2:], "--dry-run").stdout
    cells = shown["cells"]
    assert f"activation atlas of mid (5x5 grid, 600 points): {cells} cells: {cells} cached" in text
    coarser = tmp_path / "coarser.toml"
    coarser.write_text(recipe_toml(MAPPED, activation_atlas={"grid": 3}))
    plan = json.loads(atlas("build", str(coarser), *args).stdout)
    shown = plan["activation_atlas"]["mid"]
    assert shown["laid_out"] and shown["grid"] == 3 and shown["cells_to_compute"] == shown["cells"]
    rebuilt = atlas_build(coarser, tmp_path, "--cache-dir", str(tmp_path / "cache"))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "UMAP" not in rebuilt.stderr
    grid = manifest_of(type(mapped)(tmp_path, coarser, rebuilt))["activation_atlas"]["mid"]
    assert grid["grid"] == 3 and all(c["image"] for c in grid["cells"])


@e2e
def test_atlas_activation_atlas_from_python_reuses_the_cache(mapped, tmp_path):
    import atlas as feature_atlas

    shutil.copytree(mapped.cache, tmp_path / "cache")
    found = feature_atlas.activation_atlas(
        "shapes/unet",
        "mid",
        dataset=MAPPED["dataset"],
        points=600,
        grid=5,
        steps=32,
        size=32,
        cache_dir=tmp_path / "cache",
        out_dir=tmp_path / "site",
        show_progress=False,
    )
    built = manifest_of(mapped)["activation_atlas"]["mid"]
    assert found.result.computed == 0  # samples, layout and cells all came from the cache
    assert [c["key"] for c in found.cells] == [c["key"] for c in built["cells"]]
    assert found.page.is_file() and found.grid == 5 and found.layout["points"] == 600
    picture = found.picture(0)
    assert picture.shape == (32, 32, 3) and 0 <= picture.min() < picture.max() <= 1
    assert found.result.manifest["layers"] == []
