"""The demo: generated data, the shipped weights, and faithful class pictures."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from atlas_shapes.data import CLASSES, make_batch, make_packed
from atlas_shapes.train import evaluate, train

from atlas.pipeline.build import run_build
from atlas.recipe import load_recipe
from atlas.registry import load_registry
from atlas.store.cache import Cache


@pytest.fixture(scope="module")
def shapes():
    return load_registry().load_model("shapes/unet")


def test_data_is_reproducible_from_a_seed():
    a = make_batch(np.random.default_rng(5), 4)
    b = make_batch(np.random.default_rng(5), 4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_every_class_occurs_in_generated_data():
    _, labels = make_batch(np.random.default_rng(0), 64)
    assert set(np.unique(labels)) == set(range(len(CLASSES)))


def test_shipped_weights_segment_held_out_images(shapes):
    report = evaluate(shapes.module, seed=123, n=128)
    assert report["pixel_accuracy"] > 0.97
    assert min(report["class_recall"].values()) > 0.85


def test_a_packed_frame_is_mostly_its_class(shapes):
    """The transfer bench's reference pictures: the U-Net reads each as its class."""
    for cls in range(1, len(CLASSES)):
        frame = make_packed(np.random.default_rng(0), cls, radius=11)
        assert frame.shape == (64, 64, 3) and frame.min() >= 0 and frame.max() <= 1
        image = torch.from_numpy(frame).permute(2, 0, 1)[None]
        with torch.no_grad():
            predicted = shapes.module(shapes.input.normalize(image)).argmax(1)
        share = (predicted == cls).float().mean().item()
        assert share > 0.5, f"{CLASSES[cls]}: {share:.0%}"


@pytest.mark.e2e
def test_every_class_picture_is_predicted_as_its_class(tmp_path, shapes):
    """Feed each class channel's picture back: most pixels must get that class."""
    recipe = replace(
        load_recipe(),
        layers=["output"],
        pictures=[],
        dataset=None,
        connections=None,
        activation_atlas=None,
    )
    result = run_build(recipe, cache_dir=tmp_path / "cache", out_dir=tmp_path / "site")
    assert not result.failed and result.computed == len(CLASSES)
    cache = Cache(tmp_path / "cache")
    for unit in result.plan.units:
        image = torch.from_numpy(cache.get(unit.key).image()).permute(2, 0, 1)[None]
        with torch.no_grad():
            predicted = shapes.module(shapes.input.normalize(image)).argmax(1)
        share = (predicted == unit.channel).float().mean().item()
        assert share > 0.5, f"{unit.label}: only {share:.0%} of pixels predicted as it"


def test_training_is_reproducible_from_a_seed():
    first, _ = train(steps=3, batch=4, seed=7, lr=0.01)
    second, _ = train(steps=3, batch=4, seed=7, lr=0.01)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
