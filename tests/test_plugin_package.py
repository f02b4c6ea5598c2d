"""A third-party plugin package, built as a wheel and installed with pip in the test,
whose objective, regularizer and parameterization a recipe uses by name."""

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile

import pytest
from helpers import atlas

pytestmark = pytest.mark.e2e  # the real atlas command, workers, a cluster or the browser

PLUGIN = '''
import torch
from torch import nn

from atlas.plugin import ImageParam, Objective, Option, Parameterization, hookimpl


class CentreSurround(Objective):
    """A channel's centre half minus its border."""

    def __init__(self, layer, channel):
        self.layer, self.channel = layer, channel

    def __call__(self, acts):
        act = acts[self.layer][:, self.channel]
        h, w = act.shape[-2:]
        centre = act[:, h // 4 : h - h // 4, w // 4 : w - w // 4]
        return centre.mean((1, 2)) - act.mean((1, 2))

    @property
    def layers(self):
        return frozenset({self.layer})

    @property
    def spec(self):
        return {"type": "centre_surround", "layer": self.layer, "channel": self.channel}


def greyness():
    """Penalise colour: the spread of the channels at each pixel."""
    return lambda image: image.std(1).flatten(1).mean(1)


class Blocky(ImageParam):
    """Pixels learnt in blocks of block x block, shown as blocks."""

    def __init__(self, shape, generators, decorrelate=True, block=4):
        super().__init__(shape[1], decorrelate)
        b, c, h, w = shape
        self.size = (h, w)
        rows = [torch.randn((c, h // block, w // block), generator=g) * 0.01 for g in generators]
        self.small = nn.Parameter(torch.stack(rows))

    def raw(self):
        return nn.functional.interpolate(self.small, size=self.size, mode="nearest")


@hookimpl
def feature_atlas_register_objectives(register):
    register("centre_surround", CentreSurround, channels=True)


@hookimpl
def feature_atlas_register_regularizers(register):
    register("greyness", greyness)


@hookimpl
def feature_atlas_register_parameterizations(register):
    register("blocky", Parameterization(Blocky, (Option("block", int, 4),)))
'''

RECIPE = """
layers = ["output"]
[model]
source = "shapes/unet"
[render]
size = 32
steps = 12
param = "blocky"
block = 8
regularizers = {greyness = 1.0}
[run]
max_channels = 1
[[pictures]]
name = "circle centre"
objective = "centre_surround('output', 'circle') + 0.5 * channel('output', 'circle') - greyness()"
"""


def _wheel(folder):
    """Write a wheel of the plugin package by hand (no build backend, no network)."""
    name, version = "atlas_extras_demo", "1.0"
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": PLUGIN,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: atlas-extras-demo\nVersion: {version}\n",
        f"{dist}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{dist}/entry_points.txt": f"[feature_atlas]\nextras = {name}\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin")
    target = root / "site-packages"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps"]
    subprocess.run([*pip, "--target", str(target), str(_wheel(root))], check=True)
    return root, {**os.environ, "PYTHONPATH": str(target)}


def test_the_installed_plugin_registers_its_three_kinds(installed):
    _, env = installed
    plugins = {p["name"]: p for p in json.loads(atlas("plugins", "--json", env=env).stdout)}
    assert plugins["extras"]["distribution"] == "atlas-extras-demo"
    assert plugins["extras"]["registered"] == {
        "objectives": ["centre_surround"],
        "regularizers": ["greyness"],
        "parameterizations": ["blocky"],
    }


def test_a_recipe_uses_them_by_name(installed):
    root, env = installed
    (root / "extras.toml").write_text(RECIPE)
    out = root / "site"
    result = atlas(
        "build",
        str(root / "extras.toml"),
        "--out",
        str(out),
        "--cache-dir",
        str(root / "cache"),
        "--quiet",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    (picture,) = manifest["pictures"]
    assert picture["error"] is None and picture["objective_final"] is not None
    import cv2

    image = cv2.imread(str(out / picture["image"]))
    blocks = image[::8, ::8]
    assert (image == blocks.repeat(8, 0).repeat(8, 1)).all()  # blocky, with the recipe's block
    entry = next(p for p in (root / "cache").rglob("*.json") if p.name != "digests.json")
    spec = json.loads(entry.read_text())["spec"]
    assert spec["render"]["param"] == "blocky" and spec["render"]["regularizers"] == {
        "greyness": 1.0
    }
    assert spec["render"]["param_options"] == {"block": 8}


def test_without_the_plugin_the_recipe_names_what_is_missing(installed, tmp_path):
    root, _ = installed
    result = atlas("build", str(root / "extras.toml"), "--dry-run")
    assert result.returncode == 4
    assert "key 'render.param': unknown parameterization 'blocky'" in result.stderr
