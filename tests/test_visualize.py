"""atlas.visualize from Python: live modules, the cache, batches and display."""

import cv2
import numpy as np
import pytest
import torch
from conftest import TinyCNN

import atlas
from atlas.engine import objectives as obj
from atlas.errors import AtlasError

OPTIONS = {"input_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3, "labels": ["a", "b", "c", "d"]}


def show(objective, tmp_path, module=None, **kwargs):
    kwargs = {"steps": 20, "options": OPTIONS, "cache_dir": tmp_path, "progress": False, **kwargs}
    if module is None:
        torch.manual_seed(0)
        module = TinyCNN()
    return atlas.visualize(module, objective, **kwargs)


def test_a_rerun_comes_from_the_cache_with_the_same_pictures(tmp_path):
    first = show("channel('output', 'c') - 0.5 * channel('conv2', 1)", tmp_path, size=24, seed=3)
    again = show("channel('output', 'c') - 0.5 * channel('conv2', 1)", tmp_path, size=24, seed=3)
    assert first.images.shape == (1, 24, 24, 3) and not first.from_cache and again.from_cache
    np.testing.assert_allclose(first.images, again.images)
    assert first.final[0] == pytest.approx(again.final[0])
    other = show("channel('output', 'c') - 0.5 * channel('conv2', 1)", tmp_path, size=24, seed=4)
    assert not other.from_cache and np.abs(other.images - first.images).mean() > 0.01
    retrained = TinyCNN()  # other weights: another cache key
    expression = "channel('output', 'c') - 0.5 * channel('conv2', 1)"
    assert not show(expression, tmp_path, module=retrained, size=24, seed=3).from_cache


def test_unnamed_callables_are_never_cached(tmp_path):
    brightness = atlas.objective(lambda acts: acts["input"].mean((1, 2, 3)), layers=["input"])
    first = show(obj.channel("conv1", 0) + brightness, tmp_path)
    assert not show(obj.channel("conv1", 0) + brightness, tmp_path).from_cache
    assert first.curve.shape[1] == 1 and first.curve[-1, 0] > first.curve[0, 0]


def test_batches_and_diversity_sets_save_as_a_grid(tmp_path):
    v = show("channel('conv2', 2)", tmp_path, batch=2, diversity=3, cache=False)
    assert v.images.shape == (6, 32, 32, 3) and v.final.shape == (6,)
    grid = cv2.imread(str(v.save(tmp_path / "grid.png")))
    assert grid.shape == (32, 6 * 32 + 5 * 2, 3)
    assert v._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "channel(&#x27;conv2&#x27;, 2)" in v._repr_html_()


def test_keywords_take_what_recipe_keys_take(tmp_path):
    v = show(
        "channel('conv1', 1)",
        tmp_path,
        size=16,
        transforms={"pad": 2, "jitter": 1, "scales": [1.0], "degrees": 0, "jitter2": 0},
        regularizers={"tv": 0.1},
        alpha=True,
    )
    assert v.images.shape == (1, 16, 16, 4)
    assert cv2.imread(str(v.save(tmp_path / "a.png")), cv2.IMREAD_UNCHANGED).shape[-1] == 4
    with pytest.raises(AtlasError, match=r"unknown keyword 'stpes' \(did you mean: steps"):
        show("channel('conv1', 1)", tmp_path, stpes=3)
    with pytest.raises(AtlasError, match="cannot make transparent pictures"):
        show("channel('conv1', 1)", tmp_path, param="maco", alpha=True)


def test_build_takes_recipe_values_too(tmp_path):
    result = atlas.build(
        model=TinyCNN(),
        layers=["conv1"],
        options=OPTIONS,
        size=16,
        steps=2,
        negative=True,
        max_channels=2,
        cache_dir=tmp_path / "c",
        out_dir=tmp_path / "s",
        show_progress=False,
    )
    assert not result.failed and result.computed == 4
    assert result.manifest["layers"][0]["units"][0]["image"] == "images/conv1/0.png"


class GreedyCNN(TinyCNN):
    """Runs out of memory whenever it sees more than two images at once."""

    seen: list[int] = []  # noqa: RUF012 - batch sizes tried, in order

    def forward(self, x):
        GreedyCNN.seen.append(x.shape[0])
        if x.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return super().forward(x)


def flaky():
    """Return an unnamed objective whose second picture goes NaN from step 3 of its first
    optimisation, and is well behaved when retried."""
    state = {"calls": 0, "poisoned": True}

    def score(acts):
        value = acts["conv1"][:, 1].mean((1, 2))
        state["calls"] += 1
        second = state["calls"] % 2 == 0  # parts score in turn: picture 0, picture 1
        if state["poisoned"] and second and state["calls"] >= 6:
            value = value * float("nan")
        if not torch.is_grad_enabled() and second:  # the final scoring ends an optimisation
            state["poisoned"] = False
        return value

    return atlas.objective(score, layers=["conv1"])


@pytest.mark.parametrize("cache", [True, False])
def test_visualize_halves_a_batch_that_runs_out_of_memory(tmp_path, cache):
    GreedyCNN.seen.clear()
    torch.manual_seed(0)
    unnamed = atlas.objective(lambda acts: acts["conv1"][:, 0].mean((1, 2)), layers=["conv1"])
    objective = "channel('conv1', 0)" if cache else unnamed
    result = show(objective, tmp_path, GreedyCNN(), batch=4, steps=2, cache=cache)
    assert result.images.shape[0] == 4 and np.isfinite(result.images).all()
    seen = GreedyCNN.seen
    assert seen.count(4) == 1 and max(seen[seen.index(4) + 1 :]) == 2  # tried whole, then halved


@pytest.mark.parametrize("named", [True, False])
def test_visualize_retries_a_picture_that_went_nan_at_a_lower_rate(tmp_path, named):
    objective = flaky()
    if named:  # named, yet cache=False: the same runner
        objective = atlas.objective(objective.fn, layers=["conv1"], name="flaky")
    result = show(objective, tmp_path, batch=2, steps=6, cache=False)
    assert np.isfinite(result.images).all() and np.isfinite(result.final).all()
    always = atlas.objective(
        lambda acts: acts["conv1"][:, 0].mean((1, 2)) * float("nan"), layers=["conv1"]
    )
    with pytest.raises(AtlasError, match=r"NaN or inf, also when retried with lr 0\.005"):
        show(always, tmp_path, steps=2, lr=0.05)


def test_visualize_reports_progress_to_a_callback(tmp_path):
    ticks = []
    show("channel('conv1', 0)", tmp_path, batch=2, steps=4, progress=ticks.append)
    assert ticks[-1].done == ticks[-1].total == 2 and ticks[-1].steps == 4
    assert [t.done for t in ticks] == sorted(t.done for t in ticks)


def test_a_live_module_gets_dataset_examples_and_composed_pictures(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(images / f"{i}.png"), rng.integers(0, 256, (40, 40, 3), np.uint8))
    ticks = []
    result = atlas.build(
        model=TinyCNN(),
        layers=["conv1"],
        options=OPTIONS,
        size=16,
        steps=2,
        max_channels=2,
        dataset={"source": f"folder:{images}", "samples": 6, "top_k": 3},
        pictures=[
            {"name": "value", "objective": obj.channel("conv1", 0) - obj.channel("conv1", 1)},
            {"name": "text", "objective": "channel('conv1', 1)", "steps": 3},
        ],
        cache_dir=tmp_path / "c",
        out_dir=tmp_path / "s",
        progress=ticks.append,
    )
    manifest = result.manifest
    assert not result.failed
    assert [len(u["examples"]) for u in manifest["layers"][0]["units"]] == [3, 3]
    assert [p["name"] for p in manifest["pictures"]] == ["value", "text"]
    assert all((tmp_path / "s" / p["image"]).is_file() for p in manifest["pictures"])
    assert "channel" in manifest["pictures"][0]["objective"]
    assert {t.stage for t in ticks} == {"dataset examples", "atlas python-TinyCNN"}
