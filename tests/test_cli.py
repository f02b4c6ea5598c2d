"""What the README promises about the command line, checked one claim at a time."""

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import TINY_PICTURES, atlas, atlas_build, plugin_env

import atlas as atlas_package
from atlas.pipeline.build import plan_build
from atlas.recipe import Recipe, RenderSettings
from atlas.recipe import settings as render_module
from atlas.store.cache import Cache

pytestmark = pytest.mark.e2e  # the real atlas command, workers, a cluster or the browser

FAILING_PLUGIN = """
from atlas.plugin import hookimpl
from atlas.engine.objectives import channel


@hookimpl
def feature_atlas_register_objectives(register):
    def picky(layer, channels):
        if layer == "enc1":
            raise RuntimeError("enc1 is not allowed")
        return channel(layer, channels)

    register("picky", picky, channels=True)
"""


@pytest.fixture
def picky_env(tmp_path):
    """An installed plugin whose objective fails on one layer."""
    return plugin_env(tmp_path, "picky", FAILING_PLUGIN)


def test_failed_units_exit_1_with_their_lines_and_the_rest_is_kept(
    tmp_path, picky_env, write_recipe
):
    result = atlas_build(write_recipe(render={"objective": "picky"}), tmp_path, env=picky_env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "computed 7 pictures, 0 from the cache"
    assert lines[1] == "failed: enc1 channel 0: RuntimeError: enc1 is not allowed"
    assert lines[-1] == "... and 6 more failed; the site marks each of them"
    assert result.stdout.strip().endswith("index.html")


@pytest.mark.parametrize(
    "args, message",
    [
        (["build", "--json"], "--json goes with --dry-run"),
        (["build", "--jobs", "0"], "Invalid value for '--jobs'"),
        (["build", "--frobnicate"], "No such option '--frobnicate'"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
    ],
)
def test_usage_errors_exit_4(args, message):
    result = atlas(*args)
    assert result.returncode == 4 and message in result.stderr


def test_templates_device_and_quiet_options(tmp_path, write_recipe):
    mine = tmp_path / "templates"
    mine.mkdir()
    (mine / "layer.html").write_text("MY LAYER {{ layer.name }}")
    recipe = write_recipe("r")
    quiet = atlas_build(recipe, tmp_path, "--templates", str(mine), "--device", "cpu")
    assert quiet.returncode == 0, quiet.stderr
    assert (tmp_path / "site" / "layers" / "enc1.html").read_text() == "MY LAYER enc1"
    assert "it/s" not in quiet.stderr and "img" not in quiet.stderr  # no progress bar
    noisy = atlas(
        "build",
        str(recipe),
        "--cache-dir",
        str(tmp_path / "c2"),
        "--out",
        str(tmp_path / "s2"),
        "--device",
        "cpu",
    )
    done = f"{TINY_PICTURES}/{TINY_PICTURES}"
    assert noisy.returncode == 0 and "atlas r:" in noisy.stderr and done in noisy.stderr


def test_the_installed_console_script_runs():
    script = Path(sys.executable).parent / "atlas"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and atlas_package.__version__ in done.stdout


def test_build_without_a_recipe_plans_the_embedded_demo(tmp_path):
    result = atlas("build", "--dry-run", "--json", "--cache-dir", str(tmp_path))
    plan = json.loads(result.stdout)
    assert plan["recipe"] == "shapes" and plan["model"] == "shapes/unet"
    assert [layer["name"] for layer in plan["layers"]] == ["enc2", "mid", "output"]
    assert plan["units_total"] == 103 and plan["pictures_total"] == 6
    assert plan["dataset"]["source"] == "shapes/val" and plan["units_cached"] == 0


def keys(adapter, registry, tmp_path, **changes):
    recipe = Recipe(model="test/tiny", layers=["conv1"], render=RenderSettings(steps=4))
    recipe = replace(recipe, **{k: v for k, v in changes.items() if k != "render"})
    if "render" in changes:
        recipe = replace(recipe, render=replace(recipe.render, **changes["render"]))
    plan = plan_build(recipe, Cache(tmp_path), registry, adapter)
    return [unit.key for unit in plan.units]


def test_what_changes_the_cache_key_and_what_does_not(adapter, registry, tmp_path, monkeypatch):
    base = keys(adapter, registry, tmp_path)
    for change in ({"seed": 1}, {"render": {"steps": 5}}, {"render": {"size": (16, 16)}}):
        assert keys(adapter, registry, tmp_path, **change) != base, change
    for change in (
        {"title": "another"},
        {"jobs": 2},
        {"out_dir": tmp_path / "elsewhere"},
        {"batch_size": 3},
    ):
        assert keys(adapter, registry, tmp_path, **change) == base, change
    adapter.weights_digest = "other-weights"
    assert keys(adapter, registry, tmp_path) != base
    adapter.weights_digest = "tiny-seed-0"
    monkeypatch.setattr(render_module, "ENGINE_VERSION", "next")
    assert keys(adapter, registry, tmp_path) != base


def test_a_damaged_entry_is_recomputed_by_the_next_build(tmp_path, write_recipe, every_table):
    shutil.copytree(every_table.cache, tmp_path / "cache")  # holds every picture of TINY
    metas = (tmp_path / "cache").glob("??/*.json")
    png = next(m for m in metas if json.loads(m.read_text())["name"] == "output channel 1 (circle)")
    png = png.with_suffix(".png")
    png.write_bytes(png.read_bytes()[:40])  # torn, as by a full disk
    again = atlas_build(write_recipe(), tmp_path)
    assert again.returncode == 0
    assert f"computed 1 pictures, {TINY_PICTURES - 1} from the cache" in again.stderr


def test_serve_previews_a_site_under_a_base_path_and_a_taken_port_is_one_line(every_table):
    import socket
    import urllib.error
    import urllib.request

    command = [sys.executable, "-m", "atlas", "serve", str(every_table.site)]
    server = subprocess.Popen(
        [*command, "--port", "0", "--base", "/atlas/tiny"], stdout=subprocess.PIPE, text=True
    )
    try:
        line = server.stdout.readline()
        assert line.startswith(f"serving {every_table.site} at http://127.0.0.1:")
        url = line.split(" at ")[1].split()[0]
        assert url.endswith("/atlas/tiny/")
        with urllib.request.urlopen(url + "layers/output.html") as response:
            assert response.status == 200 and b"circle" in response.read()
        with urllib.request.urlopen(url.split("/atlas/")[0] + "/") as response:
            assert response.url == url  # the root redirects to the base
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(url.split("/atlas/")[0] + "/index.html")
    finally:
        server.terminate()
        server.wait(timeout=30)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = atlas("serve", str(every_table.site), "--port", str(port))
    assert result.returncode == 4
    (message,) = result.stderr.strip().splitlines()
    assert f"cannot serve on 127.0.0.1:{port}" in message and "--port" in message
