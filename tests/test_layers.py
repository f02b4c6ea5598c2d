import pytest
import torch

from atlas.errors import LayerError
from atlas.models.layers import OUTPUT, catalogue, dummy_input, forward_layers, select


def test_catalogue_lists_modules_in_order_with_shapes(adapter):
    layers = {layer.name: layer for layer in catalogue(adapter)}
    assert list(layers)[:2] == ["conv1", "relu1"]
    assert layers["conv1"].shape == (8, 32, 32) and layers["conv1"].channels == 8
    assert layers["fc"].shape == (4,) and layers["fc"].channels == 4
    assert layers[OUTPUT].channels == 4


def test_forward_stops_after_the_deepest_layer_needed(adapter):
    ran = []
    later = ["relu1", "conv2", "relu2", "pool", "fc"]
    modules = dict(adapter.module.named_modules())
    handles = [modules[n].register_forward_pre_hook(lambda m, a, n=n: ran.append(n)) for n in later]
    try:
        acts = forward_layers(adapter, dummy_input(adapter), ["conv1"])
    finally:
        for h in handles:
            h.remove()
    assert set(acts) == {"conv1"}
    assert ran == []


def test_forward_leaves_no_hooks_behind(adapter):
    forward_layers(adapter, dummy_input(adapter), ["conv2", OUTPUT])
    assert all(not m._forward_hooks for m in adapter.module.modules())


def test_output_layer_runs_the_whole_model(adapter):
    acts = forward_layers(adapter, dummy_input(adapter), ["conv1", OUTPUT])
    assert acts[OUTPUT].shape == (1, 4)
    torch.testing.assert_close(acts[OUTPUT], adapter.module(dummy_input(adapter)))


def test_select_by_glob_in_execution_order(adapter):
    chosen = select(catalogue(adapter), ["conv*", "fc"], "test/tiny")
    assert [layer.name for layer in chosen] == ["conv1", "conv2", "fc"]


def test_unknown_layer_names_close_matches(adapter):
    with pytest.raises(LayerError, match=r"unknown layer of test/tiny 'conv3'.*conv1"):
        select(catalogue(adapter), ["conv3"], "test/tiny")


def test_a_star_in_a_layer_glob_crosses_dots():
    from atlas.registry import load_registry

    shapes = load_registry().load_model("shapes/unet")
    chosen = [layer.name for layer in select(catalogue(shapes), ["enc*"], "shapes/unet")]
    assert chosen[:3] == ["enc1.0", "enc1.1", "enc1.2"] and "enc2.5" in chosen
    assert "enc1" in chosen and "enc2" in chosen
