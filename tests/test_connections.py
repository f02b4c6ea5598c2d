"""Connections between layers: attribution on data and expanded weights on a network whose
answer is known, independence from batching, the reverse lists, and bad pairs refused."""

import json

import numpy as np
import pytest
import torch
from torch import nn

import atlas as atlas_api
from atlas.datasets.connections import (
    attributions,
    check_path,
    expanded_weights,
    normalised,
    strongest,
)
from atlas.errors import RecipeError
from atlas.models.adapter import InputSpec, ModelAdapter


class TwoLayer(nn.Module):
    """P: six ReLU channels of a random convolution; L: unit 0 is exactly 2·p3 − p5, unit 1
    is p0, all through a max pool (which the weights method makes an average)."""

    def __init__(self, functional: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.functional = functional
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.p = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.l = nn.Conv2d(6, 2, 1, bias=False)
        with torch.no_grad():
            self.l.weight.zero_()
            self.l.weight[0, 3], self.l.weight[0, 5], self.l.weight[1, 0] = 2.0, -1.0, 1.0

    def forward(self, x):
        x = self.p(self.conv(x))
        if self.functional:
            x = torch.sigmoid(x)
        return self.l(self.pool(x))


def adapter(module=None) -> ModelAdapter:
    spec = InputSpec(size=(16, 16), mean=(0.0,) * 3, std=(1.0,) * 3)
    return ModelAdapter(module or TwoLayer(), "test/two", "two-v1", spec)


class Noise:
    """Random images (the ReLU channels are positive on them)."""

    def __len__(self):
        return 24

    def __getitem__(self, index):
        return np.random.default_rng(index).integers(0, 256, (16, 16, 3)).astype(np.uint8), None

    def identity(self):
        return {"noise": 24}


EXAMPLES = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])


def test_both_methods_find_the_known_inputs_and_weights_their_ratio():
    weights = normalised(expanded_weights(adapter(), "p", "l", 2, 8, "cpu"))
    data = normalised(attributions(adapter(), Noise(), "p", "l", EXAMPLES, 8, "cpu"))
    for matrix in (weights, data):
        found = strongest(matrix[0], 3)
        assert found[0][0] == 3 and found[0][1] == 1.0  # p3 first, positive
        assert found[-1][0] == 5 and found[-1][1] < 0  # p5 the strongest negative
        assert [i for i, _ in found] == [3, 5]  # zero weights never listed
        assert strongest(matrix[1], 3) == [(0, 1.0)]
    assert weights[0, 3] / weights[0, 5] == pytest.approx(-2.0, rel=0.05)


def test_attribution_does_not_depend_on_the_batch_size():
    one = attributions(adapter(), Noise(), "p", "l", EXAMPLES, 1, "cpu")
    many = attributions(adapter(), Noise(), "p", "l", EXAMPLES, 8, "cpu")
    np.testing.assert_allclose(one, many, rtol=1e-5, atol=1e-6)


def test_a_functional_non_linearity_is_named_and_a_missing_path_refused():
    assert check_path(adapter(), "p", "l", "weights") == []
    assert check_path(adapter(TwoLayer(functional=True)), "p", "l", "weights") == ["sigmoid"]
    from atlas.datasets.connections import NoPath

    with pytest.raises(NoPath):
        check_path(adapter(), "l", "p", "weights")  # p runs before l: nothing to follow


def build(tmp_path, **keys):
    return atlas_api.build(
        model=TwoLayer(),
        layers=["p", "l"],
        options={"input_size": 16, "mean": [0.0] * 3, "std": [1.0] * 3},
        steps=2,
        cache_dir=tmp_path / "cache",
        out_dir=tmp_path / "site",
        show_progress=False,
        **keys,
    )


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"connections": {}}, r"connections.method = 'data' needs a \[dataset\]"),
        ({"connections": {"from": {"l": "conv"}, "method": "weights"}}, "'conv', which is not"),
        ({"connections": {"from": {"p": "l"}, "method": "weights"}}, "'p' comes before 'l'"),
        ({"connections": {"method": "magic"}}, "'connections.method' must be one of"),
    ],
)
def test_bad_connections_are_refused_before_any_work(tmp_path, keys, message):
    with pytest.raises(RecipeError, match=message):
        build(tmp_path, **keys)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.png"))


def test_the_manifest_lists_inputs_and_the_reverse_outputs(tmp_path):
    build(tmp_path, connections={"method": "weights", "top": 2})
    manifest = json.loads((tmp_path / "site" / "manifest.json").read_text())
    assert manifest["connections"] == [{"layer": "l", "from": "p", "method": "weights", "top": 2}]
    source, layer = manifest["layers"]
    first = layer["units"][0]["inputs"]
    assert [(i["channel"], i["weight"]) for i in first] == [(3, 1.0), (5, -0.5)]
    assert first[0]["page"] == source["units"][3]["page"]
    for unit in source["units"]:
        for out in unit["outputs"]:
            inputs = layer["units"][out["channel"]]["inputs"]
            back = [i for i in inputs if i["channel"] == unit["channel"]]
            assert back and back[0]["weight"] == out["weight"]
    assert [o["channel"] for o in source["units"][5]["outputs"]] == [0]  # p5: unit 0 only
    page = (tmp_path / "site" / layer["units"][0]["page"]).read_text()
    assert "Built from" in page and 'href="../../units/p/3.html"' in page
