"""Concept labels: Network Dissection's thresholds and IoU against brute force, alignment of
label maps, class selectivity from a class-per-folder tree, and thresholds applied late."""

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import atlas as atlas_api
from atlas.datasets.concepts import QUANTILE, Concepts, iou_scores, selectivity, unit_concepts
from atlas.datasets.examples import run_pass
from atlas.datasets.labels import IMAGE, PIXEL, VOID, Labels, label_kind
from atlas.datasets.prepare import prepare, prepare_labels
from atlas.models.adapter import InputSpec, ModelAdapter
from atlas.models.layers import forward_layers
from atlas.recipe import ConceptSettings


class Shapes:
    """Random images, each with a label map: a few rectangles of classes 1..3, a void border
    and class 0 elsewhere; rectangle pixels are brighter in their class's colour channel."""

    def __init__(self, n: int, shape=(32, 32)):
        self.n, self.shape = n, shape

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        rng = np.random.default_rng(index)
        h, w = self.shape
        image = rng.integers(0, 80, (h, w, 3)).astype(np.uint8)
        labels = np.zeros((h, w), np.int64)
        for _ in range(3):
            cls = int(rng.integers(1, 4))
            y, x = rng.integers(0, h - 6), rng.integers(0, w - 6)
            dy, dx = rng.integers(3, 8, 2)
            labels[y : y + dy, x : x + dx] = cls
            image[y : y + dy, x : x + dx, cls - 1] = 255
        labels[0, :] = VOID
        return image, labels

    def identity(self):
        return {"shapes": self.n}


def concepts_of(adapter, dataset, layers, batch_size=16, top_k=3):
    """Run the pass with the concept analysis; return its finding per layer."""
    analysis = Concepts(PIXEL, ("none", "red", "green", "blue"), top_k=top_k)
    run_pass(adapter, dataset, layers, len(dataset), top_k, batch_size=batch_size,
             analyses=[(analysis, layers)])  # fmt: skip
    return {layer: analysis.result(layer) for layer in layers}


def brute_force(adapter, dataset, layer):
    """Return every image's activation, upsampled map, and prepared label map."""
    images = np.stack([prepare(dataset[i][0], adapter) for i in range(len(dataset))])
    labels = np.stack([prepare_labels(dataset[i][1], adapter) for i in range(len(dataset))])
    with torch.no_grad():
        x = adapter.input.normalize(torch.from_numpy(images))
        act = forward_layers(adapter, x, [layer])[layer]
    up = F.interpolate(act, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    return act.numpy(), up.numpy(), labels


def test_thresholds_are_the_exact_quantile_and_iou_is_brute_force(adapter):
    dataset = Shapes(40)
    found = concepts_of(adapter, dataset, ["conv1", "conv2"])
    for layer in ("conv1", "conv2"):
        meta, arrays = found[layer]
        act, up, labels = brute_force(adapter, dataset, layer)
        per_unit = act.transpose(1, 0, 2, 3).reshape(act.shape[1], -1)
        expected = np.percentile(per_unit, 100 * (1 - QUANTILE), axis=1)
        np.testing.assert_allclose(arrays["thresholds"], expected, rtol=1e-5, atol=1e-6)
        assert meta["positions"] == per_unit.shape[1]

        mask = up > expected[None, :, None, None]
        valid = labels != VOID
        mask &= valid[:, None]
        both = np.stack([(mask & (labels == k)[:, None]).sum((0, 2, 3)) for k in range(4)], 1)
        np.testing.assert_allclose(arrays["intersection"], both, atol=2)
        np.testing.assert_allclose(arrays["mask_pixels"], mask.sum((0, 2, 3)), atol=2)
        sizes = [((labels == k) & valid).sum() for k in range(4)]
        np.testing.assert_array_equal(arrays["label_pixels"], sizes)
        union = mask.sum((0, 2, 3))[:, None] + np.array(sizes)[None] - both
        np.testing.assert_allclose(iou_scores(arrays), both / union, atol=1e-3)


def test_concepts_do_not_depend_on_the_batch_size(adapter):
    dataset = Shapes(30)
    small = concepts_of(adapter, dataset, ["conv2"], batch_size=4)["conv2"][1]
    large = concepts_of(adapter, dataset, ["conv2"], batch_size=30)["conv2"][1]
    np.testing.assert_allclose(small["thresholds"], large["thresholds"], rtol=1e-5)
    np.testing.assert_allclose(small["intersection"], large["intersection"], atol=2)
    np.testing.assert_array_equal(small["mask_index"], large["mask_index"])


class Rare:
    """Images where class 1 covers at most 0.5 % of the pixels: a 2x2 square in 32x32 (0.4 %),
    marked in the red channel; noise in green."""

    def __len__(self):
        return 50

    def __getitem__(self, index):
        rng = np.random.default_rng(index)
        image = np.zeros((32, 32, 3), np.float32)
        labels = np.zeros((32, 32), np.int64)
        y, x = rng.integers(0, 30, 2)
        image[y : y + 2, x : x + 2, 0] = 1.0
        labels[y : y + 2, x : x + 2] = 1
        image[..., 1] = rng.uniform(0, 1, (32, 32))
        return image, labels

    def identity(self):
        return {"rare": 50}


class RedDetector(nn.Module):
    """Unit 0: 1 + small noise inside the red square and 0 outside; unit 1: never fires."""

    def forward(self, x):
        red, noise = x[:, :1], x[:, 1:2]
        unit = torch.where(red > 0.5, 1 + 0.01 * (noise - 0.5), torch.zeros_like(red))
        return torch.cat([unit, torch.zeros_like(unit)], 1)


def identity_adapter(module: nn.Module, size=(32, 32)) -> ModelAdapter:
    spec = InputSpec(channels=3, size=size, mean=(0.0,) * 3, std=(1.0,) * 3)
    return ModelAdapter(module, "test/red", "red-v1", spec)


def test_a_rare_class_is_found_and_a_silent_unit_detects_nothing():
    adapter = identity_adapter(RedDetector())
    meta, arrays = concepts_of(adapter, Rare(), ["output"])["output"]
    meta["classes"] = ["background", "red square"]
    found = unit_concepts(meta, arrays, ConceptSettings())
    assert found[0].concept == "red square" and found[0].concepts[0]["score"] > 0.9
    assert found[1].concept is None and found[1].concepts == []


class Landscape:
    """Non-square images (h x w): the red channel is exactly where label 1 is."""

    def __init__(self, shape):
        self.shape = shape

    def __len__(self):
        return 12

    def __getitem__(self, index):
        rng = np.random.default_rng(index)
        h, w = self.shape
        labels = np.zeros((h, w), np.int64)
        for _ in range(4):
            y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
            labels[y : y + 8, x : x + 8] = 1
        image = np.zeros((h, w, 3), np.uint8)
        image[..., 0] = np.where(labels == 1, 255, 0)
        return image, labels

    def identity(self):
        return {"landscape": self.shape}


class Red(nn.Module):
    """One unit: 0 off red, and on red rising to the right (its top 0.5 % is all red)."""

    def forward(self, x):
        ramp = torch.linspace(1, 2, x.shape[-1]).view(1, 1, 1, -1)
        return torch.where(x[:, :1] > 0.5, ramp, torch.zeros_like(ramp))


@pytest.mark.parametrize("shape", [(48, 96), (100, 40)])
def test_label_maps_stay_aligned_on_non_square_images(shape):
    adapter = identity_adapter(Red(), size=(24, 32))
    dataset = Landscape(shape)
    for i in range(3):
        image, labels = dataset[i]
        red = prepare(image, adapter)[0] > 0.5
        assert (red == (prepare_labels(labels, adapter) == 1)).mean() > 0.97
    _, arrays = concepts_of(adapter, dataset, ["output"])["output"]
    inside = arrays["intersection"][0, 1]  # of the masked pixels, those labelled red: all but
    assert inside > 0.85 * arrays["mask_pixels"][0] > 0  # edges the two resamplings differ on


def test_label_kinds_and_selectivity_index():
    assert label_kind(None) is None and label_kind(3) == IMAGE and label_kind(np.int64(2)) == IMAGE
    assert label_kind(np.zeros((4, 4), np.uint8)) == PIXEL and label_kind(np.zeros(3)) is None
    means = np.array([[3.0, -1.0], [1.0, -2.0], [1.0, -3.0]])  # classes x units
    index = selectivity(means)
    assert index[0, 0] == pytest.approx((3 - 1) / (3 + 1))
    assert np.isnan(index[:, 1]).all()  # negative means: no index (as for logits)
    assert Labels(PIXEL, ("a", "b")).name(1) == "b" and Labels(PIXEL).name(4) == "4"


class MeanColour(nn.Module):
    """Three units: the mean red, green and blue of the image."""

    def forward(self, x):
        return x.mean((2, 3))


@pytest.fixture
def colour_tree(tmp_path):
    """A class-per-folder tree: red, green and blue images with a little noise."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(("blue", "green", "red")):
        (tmp_path / "tree" / name).mkdir(parents=True)
        for i in range(6):
            image = rng.integers(0, 40, (16, 16, 3)).astype(np.uint8)
            image[..., c] = 220  # OpenCV writes BGR: blue, green, red
            cv2.imwrite(str(tmp_path / "tree" / name / f"{i}.png"), image)
    return tmp_path / "tree"


def build_colours(tmp_path, tree, **dataset):
    adapter = identity_adapter(MeanColour(), size=(16, 16))
    return atlas_api.build(
        model=adapter,
        layers=["output"],
        dataset={"source": f"folder:{tree}", "options": {"labels": "folders"}, **dataset},
        steps=2,
        size=16,
        cache_dir=tmp_path / "cache",
        out_dir=tmp_path / "site",
        show_progress=False,
    )


def test_a_class_per_folder_labels_units_by_selectivity(tmp_path, colour_tree):
    result = build_colours(tmp_path, colour_tree, top_k=4, samples=18)
    assert not result.failed
    manifest = json.loads((tmp_path / "site" / "manifest.json").read_text())
    assert manifest["concepts"]["kind"] == "selectivity"
    assert manifest["concepts"]["classes"] == ["blue", "green", "red"]
    units = manifest["layers"][0]["units"]
    assert [u["concept"] for u in units] == ["red", "green", "blue"]
    best = units[0]["concepts"][0]
    assert best["kind"] == "selectivity" and best["share"] == 1.0 and best["score"] > 0.5
    assert manifest["layers"][0]["summary"] == {
        "units": 3,
        "detectors": 3,
        "unique_concepts": 3,
        "by_concept": {"blue": 1, "green": 1, "red": 1},
    }


def test_changing_a_threshold_recomputes_nothing(tmp_path, colour_tree):
    build_colours(tmp_path, colour_tree, samples=18)
    analyses = sorted((tmp_path / "cache" / "analyses").rglob("arrays.npz"))
    stamps = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in analyses]
    strict = build_colours(tmp_path, colour_tree, samples=18, detector_selectivity=0.99)
    assert strict.computed == 0
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in analyses] == stamps
    manifest = json.loads((tmp_path / "site" / "manifest.json").read_text())
    assert manifest["layers"][0]["summary"]["detectors"] == 0
    assert manifest["concepts"]["detector_selectivity"] == 0.99


def test_a_data_set_without_labels_builds_without_concepts(tmp_path, colour_tree, capfd):
    adapter = identity_adapter(MeanColour(), size=(16, 16))
    atlas_api.build(
        model=adapter,
        layers=["output"],
        dataset={"source": f"folder:{colour_tree}", "detector_iou": 0.1},
        steps=2,
        size=16,
        cache_dir=tmp_path / "cache",
        out_dir=tmp_path / "site",
        show_progress=False,
    )
    (note,) = [line for line in capfd.readouterr().err.splitlines() if "concepts" in line]
    assert "gives no labels with its images" in note and "without concepts" in note
    manifest = json.loads((tmp_path / "site" / "manifest.json").read_text())
    assert manifest["concepts"] is None and manifest["layers"][0]["summary"] is None
    assert manifest["layers"][0]["units"][0]["concepts"] == []


def test_segfolder_pairs_images_with_label_maps_and_names_their_classes(tmp_path):
    from atlas.datasets import DatasetError
    from atlas.registry import load_registry

    for folder in ("images/a", "labels/a"):
        (tmp_path / folder).mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images/a/x.jpg"), np.full((6, 9, 3), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "labels/a/x.png"), np.full((6, 9), 2, np.uint8))
    (tmp_path / "classes.txt").write_text("void-ish\nsky\n<b>road</b>\n")
    registry = load_registry()
    data = registry.load_dataset(f"segfolder:{tmp_path}")
    image, labels = data[0]
    assert image.shape == (6, 9, 3) and labels.shape == (6, 9) and (labels == 2).all()
    assert data.classes == ("void-ish", "sky", "<b>road</b>")
    cv2.imwrite(str(tmp_path / "images/a/y.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"1 image\(s\) have no label map, e.g. images/a/y.png"):
        registry.load_dataset(f"segfolder:{tmp_path}")
