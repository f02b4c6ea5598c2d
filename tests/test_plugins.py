import json
import os

import pytest
from conftest import TinyPlugin
from helpers import atlas, plugin_env

from atlas.errors import PluginError
from atlas.plugin import hookimpl
from atlas.registry import load_registry


def test_demo_plugin_is_found_through_its_entry_point():
    registry = load_registry()
    shapes = next(p for p in registry.plugins if p.name == "shapes")
    assert shapes.distribution == "feature-atlas-shapes"
    assert shapes.registered == {"models": ["shapes"], "datasets": ["shapes"]}
    assert registry.owners[("models", "shapes")] == "shapes"


def test_builtins_register_through_the_same_hooks():
    registry = load_registry(env={"ATLAS_PLUGINS": ""})
    assert [p.name for p in registry.plugins] == ["builtins"]
    assert {"channel", "neuron", "layer"} <= set(registry.names("objectives"))
    assert {"fft", "pixel"} <= set(registry.names("parameterizations"))


@pytest.fixture
def broken_dist(tmp_path):
    """A distribution on a path entry whose plugin module does not exist."""
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[feature_atlas]\nbroken = no_such_module_xyz\n")
    return tmp_path


def test_broken_plugin_is_reported_and_others_still_load(broken_dist, monkeypatch):
    monkeypatch.syspath_prepend(str(broken_dist))
    registry = load_registry()
    broken = next(p for p in registry.plugins if p.name == "broken")
    assert "no_such_module_xyz" in broken.error
    assert "shapes" in registry.names("models")


@pytest.mark.e2e
def test_cli_warns_about_a_broken_plugin_by_name(broken_dist):
    env = {**os.environ, "PYTHONPATH": str(broken_dist)}
    result = atlas("plugins", env=env)
    assert result.returncode == 0
    assert "warning: plugin 'broken' (no_such_module_xyz) failed to load" in result.stderr
    assert "shapes [feature-atlas-shapes]" in result.stdout


def test_a_name_registered_twice_names_both_plugins():
    class Copycat:
        @hookimpl
        def feature_atlas_register_objectives(self, register):
            register("channel", lambda *a: None)

    with pytest.raises(PluginError, match="'builtins' and plugin 'copycat'"):
        load_registry(extra=[("copycat", Copycat())])


def test_misspelt_hook_is_reported_by_plugin_name():
    class Typo:
        @hookimpl
        def feature_atlas_register_modles(self, register):
            pass

    registry = load_registry(extra=[("typo", Typo())])
    assert (
        "feature_atlas_register_modles"
        in next(p for p in registry.plugins if p.name == "typo").error
    )


def test_unknown_name_suggests_close_matches(registry):
    with pytest.raises(PluginError, match=r"unknown objective 'chanel' \(did you mean: channel"):
        registry.objective("chanel")


@pytest.mark.e2e
def test_atlas_plugins_json_lists_every_plugin():
    out = atlas("plugins", "--json").stdout
    plugins = {p["name"]: p for p in json.loads(out)}
    assert plugins["shapes"]["registered"]["models"] == ["shapes"]
    assert "fft" in plugins["builtins"]["registered"]["parameterizations"]


def test_atlas_plugins_names_which_entry_points_load(broken_dist, monkeypatch):
    monkeypatch.syspath_prepend(str(broken_dist))
    both = load_registry(env={"ATLAS_PLUGINS": "shapes, broken"})
    assert sorted(p.name for p in both.plugins) == ["broken", "builtins", "shapes"]
    assert "shapes" in both.names("models") and both.errors[0].name == "broken"
    only = load_registry(env={"ATLAS_PLUGINS": "broken"})
    assert [p.name for p in only.plugins] == ["builtins", "broken"]
    assert "shapes" not in only.names("models")


class Misfits:
    """A plugin with one good objective and registrations that do not fit their contract."""

    @hookimpl
    def feature_atlas_register_objectives(self, register):
        register("good", lambda layer, channel: None, channels=True)
        register("nochannel", lambda layer: None, channels=True)  # claims channels, takes none
        register("notcallable", 42)

    @hookimpl
    def feature_atlas_register_parameterizations(self, register):
        register("bare", object)  # a class, not a Parameterization


def test_a_misfit_factory_marks_its_plugin_failed_and_the_rest_loads():
    registry = load_registry(extra=[("misfits", Misfits()), ("tiny", TinyPlugin())])
    info = next(p for p in registry.plugins if p.name == "misfits")
    assert "objective 'nochannel' does not fit its contract" in info.error
    assert "objective 'notcallable'" in info.error and "parameterization 'bare'" in info.error
    assert info.registered == {"objectives": ["good"]}
    assert registry.has("objectives", "good") and registry.has("models", "test")
    assert not next(p for p in registry.plugins if p.name == "tiny").error
    with pytest.raises(PluginError, match=r"objective 'nochannel' of plugin 'misfits' does not"):
        registry.objective("nochannel")
    with pytest.raises(PluginError, match=r"parameterization 'bare' of plugin 'misfits'"):
        registry.parameterization("bare")


MISFIT = """
from atlas.plugin import hookimpl


@hookimpl
def feature_atlas_register_objectives(register):
    register("wobbly", lambda layer: None, channels=True)
"""


@pytest.mark.e2e
def test_a_recipe_naming_a_misfit_exits_4_with_one_line(tmp_path):
    env = plugin_env(tmp_path, "misfit", MISFIT)
    listed = atlas("plugins", env=env).stdout
    assert "failed to load: objective 'wobbly' does not fit its contract" in listed
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'layers = ["output"]\n[model]\nsource = "shapes/unet"\n[render]\nobjective = "wobbly"\n'
    )
    result = atlas("build", str(recipe), "--dry-run", "--cache-dir", str(tmp_path / "c"), env=env)
    assert result.returncode == 4
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "objective 'wobbly' of plugin 'misfit'" in last
    assert "does not take (layer, channel)" in last
