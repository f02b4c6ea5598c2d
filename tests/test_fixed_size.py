"""Models whose head is a Linear over flattened features take only their own input size."""

import json
import os

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
