"""Models whose head is a Linear over flattened features take only their own input size."""

import json
import os

import pytest
import torch
from helpers import atlas_build

import atlas as atlas_api

MODULE = '''
import torch
from torch import nn


class LinearHead(nn.Module):
    """A conv, then a Linear over the flattened 16x16 feature map: 16x16 inputs only."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(4 * 16 * 16, 3)

    def forward(self, x):
        return self.head(self.relu(self.conv(x)).flatten(1))
'''


def linear_head(tmp_path):
    (tmp_path / "linhead.py").write_text(MODULE)
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        from linhead import LinearHead
    finally:
        sys.path.remove(str(tmp_path))
    torch.manual_seed(0)
    return LinearHead()


@pytest.mark.e2e
def test_a_linear_headed_checkpoint_builds_through_the_cli(tmp_path):
    module = linear_head(tmp_path)
    torch.save(module, tmp_path / "linhead.pt")
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        f"""layers = ["conv", "output"]
[model]
source = "file:{tmp_path / "linhead.pt"}"
options = {{trust_pickle = true, input_size = 16}}
[render]
steps = 4
"""
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = tmp_path / "site"
    result = atlas_build(recipe, tmp_path, "--jobs", "2", env=env)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert notes == [
        f"note: file:{tmp_path / 'linhead.pt'} takes only its own input size (16x16); "
        "every transformed canvas is resized back to it"
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["input"]["fixed_size"] is True
    assert all(u["image"] for layer in manifest["layers"] for u in layer["units"])


def test_a_linear_headed_module_builds_from_python(tmp_path):
    result = atlas_api.build(
        model=linear_head(tmp_path),
        layers=["conv", "output"],
        options={"input_size": 16},
        steps=4,
        cache_dir=tmp_path / "cache",
        out_dir=tmp_path / "site",
        show_progress=False,
    )
    assert not result.failed and result.computed == 4 + 3
    assert result.manifest["model"]["input"]["fixed_size"] is True


def _seen_sizes(adapter, monkeypatch, **keys):
    """Return the input sizes the model is given in the optimisation steps of visualize."""
    from atlas.engine import render

    seen, original = set(), render.model_input

    def recording(*args):
        given = original(*args)
        if torch.is_grad_enabled():  # a step, not a planning probe or the final score
            seen.add(tuple(given.shape[-2:]))
        return given

    with monkeypatch.context() as patch:
        patch.setattr(render, "model_input", recording)
        atlas_api.visualize(adapter, "channel('layer1', 0)", cache=False, progress=False, **keys)
    return seen


def test_a_convnet_classifier_runs_at_the_canvas_size_unless_asked_otherwise(monkeypatch):
    from atlas.registry import load_registry

    adapter = load_registry().load_model("torchvision/resnet18")
    sizes = _seen_sizes(adapter, monkeypatch, size=32, steps=3)
    assert sizes and all(h <= 32 + 24 + 4 and w <= 32 + 24 + 4 for h, w in sizes)  # padded
    assert adapter.input.fixed_size is False
    assert _seen_sizes(adapter, monkeypatch, size=32, steps=3, model_size=64) == {(64, 64)}


def test_a_vision_transformer_gets_its_own_size_and_says_so(capsys):
    from atlas.registry import load_registry

    adapter = load_registry().load_model("timm/test_vit")
    atlas_api.visualize(adapter, "channel('blocks.0', 0)", size=32, steps=1, cache=False)
    assert adapter.input.fixed_size is True
    assert "takes only its own input size" in capsys.readouterr().err


def test_model_size_is_a_recipe_key_and_part_of_the_picture(tmp_path):
    from atlas.errors import RecipeError
    from atlas.recipe import render_settings

    assert render_settings({"model_size": 224}, "r").model_size == (224, 224)
    keyed = render_settings({"model_size": [96, 128]}, "r")
    assert keyed.as_dict()["model_size"] == [96, 128]
    assert "model_size" not in render_settings({}, "r").as_dict()  # old cache keys stay valid
    try:
        render_settings({"model_size": 4}, "recipe.toml")
    except RecipeError as exc:
        assert "recipe.toml: key 'render.model_size'" in str(exc)
    else:
        raise AssertionError("model_size = 4 was accepted")
