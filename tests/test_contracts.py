"""One contract test per registered name: every objective, regularizer and
parameterization that the built-ins and the installed plugins register keeps its contract
(a plain-JSON spec, one score per image, the objective rises or the penalty falls,
pictures in range), and every model and data set namespace answers for a small name."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from atlas.engine import objectives as obj
from atlas.pipeline.worker import render_batch
from atlas.recipe import RenderSettings
from atlas.registry import load_registry

REGISTRY = load_registry()
FAST = RenderSettings(size=(24, 24), steps=16, lr=0.1, transforms=None)  # scores comparable

# How to call each registered objective on the tiny CNN (conftest.TinyCNN: conv1 has 8
# channels, conv2 6). A name registered without an entry here fails the test.
OBJECTIVES = {
    "channel": ("conv2", [1, 4]),
    "neuron": ("conv2", [1, 4]),
    "layer": ("conv2",),
    "direction": ("conv2", [1.0, -1.0, 0.5, 0.0, 0.0, 2.0]),
    "diversity": ("conv2",),
}
RISES = {"diversity": False}  # a similarity: subtracted, never maximised alone


def names(kind):
    return REGISTRY.names(kind)


@pytest.mark.parametrize("name", names("objectives"))
def test_every_objective_keeps_its_contract(name, adapter, registry):
    assert name in OBJECTIVES, f"add an example call of objective {name!r} to OBJECTIVES"
    entry = REGISTRY.objective(name)
    objective = entry.factory(*OBJECTIVES[name])
    json.loads(json.dumps(objective.spec))  # plain data: the cache key's content
    acts = {"conv2": torch.rand(2, 6, 5, 5), obj.INPUT: torch.rand(2, 3, 24, 24)}
    assert objective(acts).shape == (2,)
    if entry.channels:
        per_channel = entry.factory("conv2", 3)
        assert per_channel(acts).shape == (2,)
    if RISES.get(name, True):
        result = render_batch(adapter, objective, [1, 2], FAST, registry, precision="fp32")
        assert (result.final > result.curve[0]).all(), f"{name} did not rise"
        assert result.images.min() >= 0.0 and result.images.max() <= 1.0


@pytest.mark.parametrize("name", names("regularizers"))
def test_every_regularizer_penalises_per_image_and_lowers_itself(name, adapter, registry):
    penalty = REGISTRY.regularizer(name)()
    pictures = torch.rand(3, 3, 16, 16)
    assert penalty(pictures).shape == (3,)
    objective = obj.channel("conv2", [1, 4])
    free = render_batch(adapter, objective, [1, 2], FAST, registry, precision="fp32")
    held = replace(FAST, regularizers={name: 5.0})
    kept = render_batch(adapter, objective, [1, 2], held, registry, precision="fp32")

    def value(result):
        return penalty(torch.from_numpy(result.images).permute(0, 3, 1, 2))

    assert (value(kept) < value(free)).all(), f"{name} did not lower itself"


@pytest.mark.parametrize("name", names("parameterizations"))
def test_every_parameterization_makes_pictures_in_range_that_an_objective_raises(
    name, adapter, registry
):
    param = REGISTRY.parameterization(name)
    with torch.no_grad():
        images = param.make((2, 3, 24, 24), [torch.Generator().manual_seed(i) for i in (1, 2)])()
    assert images.shape == (2, 3, 24, 24)
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    settings = RenderSettings(size=(24, 24), steps=16, param=name, transforms=None)
    objective = obj.channel("conv2", [1, 4])
    result = render_batch(adapter, objective, [1, 2], settings, registry, precision="fp32")
    assert np.isfinite(result.images).all()
    assert (result.final > result.curve[0]).all(), f"{name}: the objective did not rise"


# A small name per namespace, loadable offline (random weights, made or shipped files).
MODELS = {
    "torchvision": "torchvision/resnet18",
    "timm": "timm/test_resnet",
    "shapes": "shapes/unet",
    "file": None,  # needs a file: tests/test_sources.py builds them
}


@pytest.mark.parametrize("namespace", names("models"))
def test_every_model_namespace_loads_a_small_name(namespace):
    assert namespace in MODELS, f"add a small model of namespace {namespace!r} to MODELS"
    if MODELS[namespace] is None:
        pytest.skip("a file model needs a file; test_sources.py covers it")
    adapter = REGISTRY.load_model(MODELS[namespace], "none" if namespace != "shapes" else None)
    assert adapter.weights_digest and adapter.source == MODELS[namespace]


DATASETS = {
    "shapes": "shapes/val",
    "folder": "folder",
    "segfolder": "segfolder",
    "torchvision": None,
}


@pytest.mark.parametrize("namespace", names("datasets"))
def test_every_dataset_namespace_opens_a_small_one(namespace, tmp_path):
    assert namespace in DATASETS, f"add a small data set of namespace {namespace!r} to DATASETS"
    if DATASETS[namespace] is None:
        pytest.skip("torchvision data sets need files on disk: test_dataset_build.py covers it")
    source = DATASETS[namespace]
    if namespace in ("folder", "segfolder"):
        import cv2

        (tmp_path / "images").mkdir()
        (tmp_path / "labels").mkdir()
        cv2.imwrite(str(tmp_path / "images" / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
        cv2.imwrite(str(tmp_path / "labels" / "a.png"), np.ones((8, 8), np.uint8))
        source = f"{namespace}:{tmp_path}"
    data = REGISTRY.load_dataset(source)
    image, label = data[0]
    assert len(data) >= 1 and image.ndim == 3
    if namespace in ("segfolder", "shapes"):
        assert label.shape == image.shape[:2]
    json.loads(json.dumps(data.identity()))
