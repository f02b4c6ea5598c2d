"""The objective expression language: what it accepts, and everything it refuses."""

import pytest
import torch
from helpers import atlas_build

from atlas.engine import objectives as obj
from atlas.errors import AtlasError, LayerError
from atlas.models.layers import catalogue
from atlas.pipeline.compose import Context, as_objective
from atlas.recipe.expressions import ExpressionError, parse_expression


@pytest.fixture
def context(adapter):
    found = {layer.name: layer for layer in catalogue(adapter) if layer.supported}
    return Context("test/tiny", adapter.labels, found)


def weights_and_names(text):
    return [(w, c.name) for w, c in parse_expression(text).terms]


def test_linear_combinations_flatten_to_weighted_calls():
    text = "channel('a', 1) - 0.5 * (channel('a', 2) + 2 * neuron('b', 0)) / 2 + -layer('c')"
    assert weights_and_names(text) == [
        (1.0, "channel"),
        (-0.25, "channel"),
        (-0.5, "neuron"),
        (-1.0, "layer"),
    ]


def test_arguments_are_literals_and_keywords():
    call = parse_expression("direction('conv2', [1, -2.5, 3], cossim_pow=2, mask='left')").terms[0][
        1
    ]
    assert call.args == ("conv2", [1, -2.5, 3])
    assert dict(call.kwargs) == {"cossim_pow": 2, "mask": "left"}


def test_an_expression_may_span_lines():
    text = """channel('a', 1)
      + channel('a', 2)"""
    assert len(parse_expression(text).terms) == 2


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("__import__('os').system('touch /tmp/pwned')", "only objectives called by name"),
        ("channel('a', 1).__class__", "attribute access is not allowed"),
        ("channel", "bare names are not allowed"),
        ("channel(x, 1)", "arguments must be numbers, strings or lists"),
        ("channel('a', 1)[0]", "subscripts are not allowed"),
        ("(lambda: 0)()", "only objectives called by name"),
        ("[channel('a', i) for i in range(3)]", "ListComp is not allowed"),
        ("channel('a', 1) * channel('a', 2)", "only be multiplied by a number"),
        ("channel('a', 1) / channel('a', 2)", "only be divided by a number"),
        ("channel('a', 1) ** 2", "operator Pow is not allowed"),
        ("channel(*args)", r"\*arguments are not allowed"),
        ("channel('a', 1) + 3", "a number alone is not an objective"),
        ("channel('a', 1); import os", "not a valid expression"),
        ("", "empty"),
    ],
)
def test_everything_else_is_refused_with_the_offending_part(text, why):
    with pytest.raises(ExpressionError, match=why) as info:
        parse_expression(text, "recipe.toml: picture 'x'")
    assert str(info.value).startswith("recipe.toml: picture 'x': ")


def test_labels_resolve_to_channels_and_unknown_ones_are_named(registry, context):
    made = as_objective("channel('fc', 'cat') + neuron('fc', 1)", registry, context)
    assert [t.channels for _, t in made.terms()] == [2, 1]
    with pytest.raises(ExpressionError, match=r"unknown label 'cta' \(did you mean: cat"):
        as_objective("channel('fc', 'cta')", registry, context)


def test_unknown_layers_objectives_and_channels_are_one_line_errors(registry, context):
    with pytest.raises(LayerError, match=r"unknown layer of test/tiny 'conv3' \(did you mean"):
        as_objective("channel('conv3', 0)", registry, context)
    with pytest.raises(
        ExpressionError, match=r"unknown objective 'chanel' \(did you mean: channel"
    ):
        as_objective("chanel('conv1', 0)", registry, context)
    with pytest.raises(ExpressionError, match="channel 9 of layer 'conv1' does not exist"):
        as_objective("channel('conv1', 9)", registry, context)
    with pytest.raises(ExpressionError, match="unexpected keyword argument 'colour'"):
        as_objective("channel('conv1', 0, colour=1)", registry, context)
    with pytest.raises(AtlasError, match="unknown mask region"):
        as_objective("channel('conv1', 0, mask='middle')", registry, context)


def test_regularizers_compose_as_penalties_of_the_picture(registry, context):
    made = as_objective("channel('conv1', 0) - 0.1 * tv()", registry, context)
    image = torch.rand(2, 3, 8, 8)
    acts = {"conv1": torch.ones(2, 8, 8, 8), obj.INPUT: image}
    tv = obj.Penalty("tv", registry.regularizer("tv")())(acts)
    torch.testing.assert_close(made(acts), 1.0 - 0.1 * tv)


@pytest.mark.e2e
def test_a_malicious_recipe_is_refused_at_planning_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    recipe = tmp_path / "evil.toml"
    recipe.write_text(
        'layers = ["output"]\n[model]\nsource = "shapes/unet"\n'
        '[[pictures]]\nname = "evil"\n'
        f"objective = \"__import__('os').system('touch {marker}')\"\n"
    )
    result = atlas_build(recipe, tmp_path)
    assert result.returncode == 4
    assert result.stderr.strip().splitlines() == [
        f"error: {recipe}: picture 'evil': only objectives called by name are allowed, "
        "not: \"__import__('os').system\""
    ]
    assert not marker.exists()


def test_direction_vectors_come_from_lists_or_npy_files(tmp_path, registry, adapter):
    import numpy as np

    np.save(tmp_path / "v.npy", np.array([0, 1, 0, 0, 0, 2], np.float32))
    found = {layer.name: layer for layer in catalogue(adapter) if layer.supported}
    context = Context("test/tiny", {}, found, tmp_path)
    from_file = as_objective("direction('conv2', 'v.npy')", registry, context)
    from_list = as_objective("direction('conv2', [0, 1, 0, 0, 0, 2])", registry, context)
    act = torch.rand(2, 6, 4, 4)
    expected = (act[:, 1] + 2 * act[:, 5]).mean((1, 2)) / 5**0.5
    torch.testing.assert_close(from_file({"conv2": act}), expected)
    torch.testing.assert_close(from_list({"conv2": act}), expected)
    with pytest.raises(ExpressionError, match="cannot read vector file"):
        as_objective("direction('conv2', 'missing.npy')", registry, context)
