"""The build pipeline in-process on the tiny CNN: failures, templates, interrupts."""

import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from typing import ClassVar

import pytest
import torch
from conftest import TinyCNN
from helpers import recipe_toml

import atlas as atlas_api
from atlas.engine import objectives
from atlas.errors import AtlasError
from atlas.pipeline.build import run_build
from atlas.plugin import hookimpl
from atlas.recipe import Recipe, RenderSettings
from atlas.registry import load_registry
from atlas.store.cache import Cache


class ExplodingObjective:
    """Registers 'explode': a channel objective that fails on layer conv2."""

    @hookimpl
    def feature_atlas_register_objectives(self, register):
        def explode(layer, channels):
            if layer == "conv2":
                raise RuntimeError("conv2 is cursed")
            return objectives.channel(layer, channels)

        register("explode", explode, channels=True)


def build(tmp_path, registry, adapter, recipe=None, **kwargs):
    """Build the tiny recipe (or recipe) in-process into tmp_path/site."""
    recipe = recipe or tiny_recipe()
    return run_build(
        recipe,
        tmp_path / "cache",
        tmp_path / "site",
        registry,
        adapter,
        **kwargs,
    )


def tiny_recipe(**kwargs) -> Recipe:
    return Recipe(
        model="test/tiny",
        layers=["conv1", "conv2"],
        name="tiny",
        render=RenderSettings(steps=3),
        **kwargs,
    )


def test_failed_units_are_reported_and_the_rest_is_kept(tmp_path, adapter):
    registry = load_registry(extra=[("explode", ExplodingObjective())])
    result = build(tmp_path, registry, adapter, tiny_recipe(objective="explode"))
    assert {o.layer for o in result.failed} == {"conv2"} and len(result.failed) == 6
    assert "conv2 is cursed" in result.failed[0].error
    assert result.computed == 8
    page = (tmp_path / "site" / "layers" / "conv2.html").read_text()
    assert page.count('class="unit failed"') == 6
    assert "conv2 is cursed" in (tmp_path / "site" / "units" / "conv2" / "0.html").read_text()


def test_user_templates_override_the_built_in_ones(tmp_path, adapter, registry):
    mine = tmp_path / "templates"
    mine.mkdir()
    (mine / "unit.html").write_text(
        '{% extends "base.html" %}{% block content %}MY UNIT {{ unit.channel }}{% endblock %}'
    )
    build(tmp_path, registry, adapter, template_dirs=[mine])
    assert "MY UNIT 3" in (tmp_path / "site" / "units" / "conv1" / "3.html").read_text()
    assert "MY UNIT" not in (tmp_path / "site" / "layers" / "conv1.html").read_text()


def test_manifest_describes_every_unit(tmp_path, adapter, registry):
    build(tmp_path, registry, adapter)
    manifest = json.loads((tmp_path / "site" / "manifest.json").read_text())
    conv1 = manifest["layers"][0]
    assert conv1["name"] == "conv1" and conv1["channels"] == 8 and len(conv1["units"]) == 8
    unit = conv1["units"][0]
    assert unit["objective_final"] is not None and len(unit["curve"]) == 3
    assert manifest["model"]["source"] == "test/tiny"


def pictures(cache_dir):
    """Return the keys of the pictures stored in a cache folder."""
    return [p.stem for p in cache_dir.glob("??/*.json")]


@pytest.mark.e2e
def test_interrupted_build_keeps_finished_pictures(tmp_path):
    recipe = tmp_path / "slow.toml"
    recipe.write_text(recipe_toml(layers=["output"], render={"steps": 60}, run={"batch_size": 1}))
    cache_dir = tmp_path / "cache"
    args = [
        sys.executable,
        "-m",
        "atlas",
        "build",
        str(recipe),
        "--cache-dir",
        str(cache_dir),
        "--out",
        str(tmp_path / "site"),
        "--quiet",
    ]
    # A shell running us in the background may ignore SIGINT; the child must not inherit that.
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while len(pictures(cache_dir)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "interrupted; finished pictures are kept in the cache" in err
    kept = pictures(cache_dir)
    assert kept and all(Cache(cache_dir).get(key) for key in kept)
    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    assert f"{len(kept)} from the cache" in again.stderr


def test_rebuild_drops_pages_of_removed_layers(tmp_path, adapter, registry):
    build(tmp_path, registry, adapter)
    fewer = Recipe(model="test/tiny", layers=["conv1"], name="tiny", render=RenderSettings(steps=3))
    build(tmp_path, registry, adapter, fewer)
    assert (tmp_path / "site" / "layers" / "conv1.html").exists()
    assert not (tmp_path / "site" / "layers" / "conv2.html").exists()
    assert not (tmp_path / "site" / "images" / "conv2").exists()


def test_refuses_to_write_into_a_folder_that_is_no_atlas(tmp_path, adapter, registry):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "thesis.tex").write_text("precious")
    with pytest.raises(AtlasError, match="is not empty and holds no atlas"):
        build(tmp_path, registry, adapter)
    assert (tmp_path / "site" / "thesis.tex").read_text() == "precious"


class Greedy(objectives.Channel):
    """A channel objective that runs out of memory whenever it sees more than two images."""

    seen: ClassVar[list[int]] = []  # batch sizes tried, in order

    @classmethod
    def merge(cls, parts, rows):
        return super().merge(parts, rows)  # batch the units as one Greedy

    def __call__(self, acts):
        Greedy.seen.append(acts[self.layer].shape[0])
        if acts[self.layer].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return super().__call__(acts)


class OutOfMemoryAbove2:
    """Registers the greedy objective as 'oom'."""

    @hookimpl
    def feature_atlas_register_objectives(self, register):
        register("oom", Greedy, channels=True)


def test_batch_is_halved_when_memory_runs_out(tmp_path, adapter):
    registry = load_registry(extra=[("oom", OutOfMemoryAbove2())])
    recipe = Recipe(
        model="test/tiny",
        layers=["conv1"],
        name="tiny",
        objective="oom",
        batch_size=8,
        render=RenderSettings(steps=2),
    )
    Greedy.seen.clear()
    result = build(tmp_path, registry, adapter, recipe)
    assert not result.failed and result.computed == 8
    assert Greedy.seen[:3] == [8, 4, 2] and set(Greedy.seen) == {8, 4, 2}


def test_python_api_names_an_unknown_keyword(tmp_path):
    with pytest.raises(AtlasError, match=r"unknown keyword 'stpes' \(did you mean: steps\?\)"):
        atlas_api.build(model=TinyCNN(), layers=["conv1"], stpes=3, cache_dir=tmp_path)


class SlowCNN(TinyCNN):
    """Records which thread ran each forward, and when; each forward takes a while."""

    calls: ClassVar[list[tuple[int, float, float]]] = []

    def forward(self, x):
        start = time.perf_counter()
        time.sleep(0.02)
        try:
            return super().forward(x)
        finally:  # the truncated forward leaves by an exception after the last layer needed
            SlowCNN.calls.append((threading.get_ident(), start, time.perf_counter()))


def test_live_module_with_several_jobs_runs_in_threads(tmp_path):
    SlowCNN.calls.clear()
    result = atlas_api.build(
        model=SlowCNN(),
        layers=["conv1"],
        steps=2,
        batch_size=2,
        jobs=2,
        cache_dir=tmp_path / "cache",
        out_dir=tmp_path / "site",
        show_progress=False,
    )
    assert not result.failed and result.computed == 8
    calls = SlowCNN.calls
    workers = {thread for thread, _, _ in calls} - {threading.get_ident()}
    assert len(workers) == 2
    overlapping = any(a[0] != b[0] and a[1] < b[2] and b[1] < a[2] for a in calls for b in calls)
    assert overlapping, "the two jobs ran one after the other"


class Flaky(objectives.Channel):
    """Channel 0 always scores NaN; channel 1 only in its first optimisation."""

    poisoned: ClassVar[set[int]] = set()

    def __call__(self, acts):
        score = super().__call__(acts)
        nan = self.channels == 0 or self.channels in Flaky.poisoned
        if not torch.is_grad_enabled():  # the final scoring ends an optimisation
            Flaky.poisoned.discard(self.channels)
        return score * float("nan") if nan else score


class FlakyPlugin:
    @hookimpl
    def feature_atlas_register_objectives(self, register):
        register("flaky", Flaky, channels=True)


def test_nan_is_retried_with_a_lower_lr_then_fails_alone(tmp_path, adapter):
    Flaky.poisoned = {1}
    registry = load_registry(extra=[("flaky", FlakyPlugin())])
    recipe = replace(tiny_recipe(objective="flaky"), render=RenderSettings(steps=3, lr=0.05))
    result = build(tmp_path, registry, adapter, recipe)
    failed = {(o.layer, o.name) for o in result.failed}
    assert failed == {("conv1", "conv1 channel 0"), ("conv2", "conv2 channel 0")}
    assert all("NaN or inf, also when retried with lr 0.005" in o.error for o in result.failed)
    assert result.computed == 8 + 6 - 2
    units = {(u.layer, u.channel): u for u in result.plan.units}
    retried = Cache(tmp_path / "cache").get(units[("conv1", 1)].key).meta
    assert retried["retried_with_lr_scale"] == 0.1
    page = (tmp_path / "site" / "units" / "conv1" / "0.html").read_text()
    assert "This unit failed: the optimisation produced NaN or inf" in page


def test_non_finite_numbers_in_a_recipe_are_refused(tmp_path):
    from atlas.errors import RecipeError
    from atlas.recipe import load_recipe

    for line in ("lr = nan", "lr = inf", "regularizers = {tv = -inf}"):
        path = tmp_path / "r.toml"
        path.write_text(f'layers = ["output"]\n[model]\nsource = "shapes/unet"\n[render]\n{line}\n')
        with pytest.raises(RecipeError, match="finite number"):
            load_recipe(path)
