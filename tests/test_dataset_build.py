"""End to end: `atlas build` with a [dataset]: folders, caching, skipped files, the demo."""

import json

import cv2
import numpy as np
import pytest
from helpers import atlas, atlas_build, recipe_toml

from atlas.datasets import DatasetError
from atlas.datasets.examples import run_pass
from atlas.registry import load_registry

pytestmark = pytest.mark.e2e  # the real atlas command, workers, a cluster or the browser


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(24):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        cv2.imwrite(str(sub / f"{i}.png"), rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    (root / "b" / "corrupt.png").write_bytes(b"\x89PNG not really")
    (root / "notes.txt").write_text("not an image")
    return root


def recipe_text(folder, layers=("output", "enc1")):
    dataset = {"source": f"folder:{folder}", "samples": 100, "top_k": 3}
    return recipe_toml(layers=list(layers), dataset=dataset)


@pytest.fixture(scope="module")
def built(tmp_path_factory, folder):
    root = tmp_path_factory.mktemp("dsbuild")
    recipe = root / "tiny.toml"
    recipe.write_text(recipe_text(folder))
    result = atlas_build(recipe, root)
    assert result.returncode == 0, result.stderr
    return root, recipe, result


def test_a_folder_with_a_corrupt_image_builds_and_reports_it(built):
    root, _, result = built
    assert "dataset: skipped 1 unreadable image(s), e.g. " in result.stderr
    assert "corrupt.png" in result.stderr
    manifest = json.loads((root / "site" / "manifest.json").read_text())
    assert manifest["dataset"]["samples"] == 24 and manifest["dataset"]["top_k"] == 3
    assert [p.endswith("corrupt.png") for p in manifest["dataset"]["skipped"]] == [True]


def test_every_unit_has_examples_statistics_and_a_ratio(built):
    site = built[0] / "site"
    manifest = json.loads((site / "manifest.json").read_text())
    for layer in manifest["layers"]:
        for unit in layer["units"]:
            assert len(unit["examples"]) == 3
            values = [e["value"] for e in unit["examples"]]
            assert values == sorted(values, reverse=True)
            assert unit["dataset"]["max"] == pytest.approx(values[0], abs=1e-4)
            assert unit["dataset"]["samples"] == 24
            assert unit["reached_over_max"] is not None
            for example in unit["examples"]:
                assert (site / example["image"]).is_file()
            page = (site / unit["page"]).read_text()
            assert "Dataset examples" in page and "Reached / dataset max" in page
    shares = [u["predicted_share"] for u in manifest["layers"][1]["units"]]
    assert manifest["layers"][1]["name"] == "output" and all(0 <= s <= 1 for s in shares)
    assert all(u["predicted_share"] is None for u in manifest["layers"][0]["units"])


def test_the_pass_is_cached_and_a_new_layer_runs_alone(built, folder):
    root, recipe, _ = built
    metas = sorted((root / "cache" / "examples").rglob("meta.json"))
    contents = [m.read_bytes() for m in metas]  # a recomputed pass writes other seconds
    plan = json.loads(
        atlas(
            "build", str(recipe), "--dry-run", "--json", "--cache-dir", str(root / "cache")
        ).stdout
    )
    assert plan["dataset"]["cached"] is True
    again = atlas_build(recipe, root)
    assert again.returncode == 0 and "nothing computed" in again.stderr
    assert [m.read_bytes() for m in metas] == contents
    wider = root / "wider.toml"
    wider.write_text(recipe_text(folder, ("output", "enc1", "enc2")))
    plan = json.loads(
        atlas("build", str(wider), "--dry-run", "--json", "--cache-dir", str(root / "cache")).stdout
    )
    assert plan["dataset"]["layers_to_compute"] == ["enc2"]
    text = atlas("build", str(wider), "--dry-run", "--cache-dir", str(root / "cache")).stdout
    assert "dataset pass folder:" in text and "to compute for enc2" in text


def test_missing_sources_are_one_line_errors(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(recipe_text(tmp_path / "nowhere"))
    result = atlas_build(recipe, tmp_path)
    assert result.returncode == 4
    assert result.stderr.strip() == f"error: image folder {tmp_path / 'nowhere'} does not exist"
    registry = load_registry()
    with pytest.raises(DatasetError, match=r"CIFAR10 is not on disk under .*offline nothing"):
        registry.load_dataset("torchvision/CIFAR10", root=str(tmp_path))
    with pytest.raises(DatasetError, match=r"unknown data set namespace 'foldr'"):
        registry.load_dataset("foldr:x")


def test_a_torchvision_dataset_on_disk_is_read(tmp_path, monkeypatch):
    import pickle

    import torchvision

    # files made here have other checksums than the published ones
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batch = {"data": rng.integers(0, 256, (5, 3072), dtype=np.uint8), "labels": [1] * 5}
    (folder / "test_batch").write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": ["x"] * 10}))
    registry = load_registry()
    data = registry.load_dataset("torchvision/CIFAR10", root=str(tmp_path), train=False)
    image, label = data[2]
    assert image.shape == (32, 32, 3) and label == 1 and len(data) == 5
    assert data.classes == ("x",) * 10


def test_voc_segmentation_on_disk_gives_label_maps_with_void_and_class_names(tmp_path):
    from PIL import Image

    base = tmp_path / "VOCdevkit" / "VOC2012"
    for folder in ("ImageSets/Segmentation", "JPEGImages", "SegmentationClass"):
        (base / folder).mkdir(parents=True)
    (base / "ImageSets/Segmentation/train.txt").write_text("a\nb\n")
    for name in ("a", "b"):
        Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(base / f"JPEGImages/{name}.jpg")
        labels = np.zeros((20, 30), np.uint8)
        labels[5:15, 5:15], labels[0] = 12, 255  # a dog, and a void border
        indexed = Image.fromarray(labels)
        indexed.putpalette(list(range(256)) * 3)  # a palette PNG, as VOC ships them
        indexed.save(base / f"SegmentationClass/{name}.png")
    data = load_registry().load_dataset("torchvision/VOCSegmentation", root=str(tmp_path))
    image, labels = data[1]
    assert image.shape == (20, 30, 3) and labels.shape == (20, 30)
    assert set(np.unique(labels)) == {0, 12, 255} and data.classes[12] == "dog"


def test_the_demo_classes_top_examples_lie_on_their_class():
    registry = load_registry()
    shapes = registry.load_model("shapes/unet")
    data = registry.load_dataset("shapes/val")
    found = run_pass(shapes, data, ["output"], 400, 9, batch_size=64)[0]["output"]
    for c in range(1, 7):  # every class but background
        on_class = [
            data[int(i)][1][tuple(found.positions[c, rank])] == c
            for rank, i in enumerate(found.indices[c])
        ]
        assert sum(on_class) >= 8, (c, on_class)  # the model's own mistakes may cost one


def test_worker_processes_find_the_same_examples(built, tmp_path):
    root, recipe, _ = built
    result = atlas_build(recipe, tmp_path, "--jobs", "2")
    assert result.returncode == 0, result.stderr

    def examples(site):
        manifest = json.loads((site / "manifest.json").read_text())
        return [
            [(e["index"], e["value"]) for e in unit["examples"]]
            for layer in manifest["layers"]
            for unit in layer["units"]
        ]

    workers, here = examples(tmp_path / "site"), examples(root / "site")
    assert [[i for i, _ in unit] for unit in workers] == [[i for i, _ in unit] for unit in here]
    values = [v for unit in workers for _, v in unit]  # threads may round the last digit
    assert values == pytest.approx([v for unit in here for _, v in unit], abs=1e-3)
