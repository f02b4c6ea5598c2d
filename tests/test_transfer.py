"""Feature accentuation (pictures started from a real image) and the judge (another model
that reads the class pictures): the issue's contract, on the tiny CNN and the shapes models."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from helpers import TINY, atlas, atlas_build

import atlas as api
from atlas.datasets.prepare import prepare
from atlas.errors import AtlasError, RecipeError
from atlas.images import decode_png
from atlas.pipeline.judging import judge_shares
from atlas.registry import Registry, load_registry


@pytest.fixture
def seed_png(tmp_path):
    """A real shapes image (with pure black and white pixels) as a PNG file."""
    image, _ = load_registry().load_dataset("shapes/val")[3]
    image = image.copy()
    image[:4, :4], image[-4:, -4:] = 0, 255
    path = tmp_path / "seed.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path, image.astype(np.float32) / 255


@pytest.mark.parametrize("param", ["fft", "pixel"])
def test_accentuation_starts_at_the_seed(adapter, registry, seed_png, param):
    path, seed = seed_png
    kept = api.visualize(
        adapter, "channel('conv2', 1)", seed_image=str(path), param=param, steps=1, lr=1e-9,
        size=64, transforms=False, cache=False, progress=False, registry=registry,
    )  # fmt: skip
    assert np.abs(kept.images[0] - seed).max() <= 1 / 255


def test_accentuation_stays_near_its_seed_while_the_unit_rises(seed_png):
    path, seed = seed_png
    keys = {"steps": 96, "size": 64, "cache": False, "progress": False}
    unit = "channel('output', 'square')"
    seeded = api.visualize("shapes/unet", unit, seed_image=str(path), **keys)
    plain = api.visualize("shapes/unet", unit, **keys)
    assert seeded.final[0] > seeded.curve[0][0] + 1.0  # the unit rose from the seed's value
    near, far = (np.abs(v.images[0] - seed).mean() for v in (seeded, plain))
    assert near < 0.6 * far


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ({"param": "maco"}, "seed_image"),
        ({"param": "cppn"}, "seed_image"),
        ({"alpha": True}, "alpha"),
    ],
)
def test_a_seed_with_what_cannot_start_from_it_is_refused(adapter, registry, seed_png, keys, named):
    with pytest.raises(RecipeError, match=named):
        api.visualize(
            adapter, "channel('conv2', 1)", seed_image=str(seed_png[0]), steps=2, cache=False,
            progress=False, registry=registry, **keys,
        )  # fmt: skip


def test_a_seed_file_that_is_no_image_is_refused(adapter, registry, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(RecipeError, match=r"seed_image.*notes\.png"):
        api.visualize(
            adapter, "channel('conv2', 1)", seed_image=str(bad), steps=2, cache=False,
            progress=False, registry=registry,
        )  # fmt: skip


def test_recipe_errors_for_accentuation_exit_4(write_recipe, tmp_path):
    no_data = write_recipe("nodata", render={**TINY["render"], "accentuate": True})
    result = atlas_build(no_data, tmp_path)
    assert result.returncode == 4 and "accentuate" in result.stderr and "[dataset]" in result.stderr
    maco = write_recipe(
        "maco",
        render={**TINY["render"], "accentuate": True, "param": "maco"},
        dataset={"source": "shapes/val", "samples": 16},
    )
    result = atlas_build(maco, tmp_path)
    assert result.returncode == 4 and "cannot start from an image" in result.stderr


def test_accentuated_units_start_from_their_top_example(tmp_path):
    keys = {
        "model": "shapes/unet", "layers": ["output"], "weights": "default", "size": 32,
        "steps": 4, "dataset": {"source": "shapes/val", "samples": 48, "top_k": 2},
        "cache_dir": tmp_path / "cache", "out_dir": tmp_path / "site", "show_progress": False,
        "pictures": [{"name": "c-s", "objective": "channel('output', 1) - channel('output', 2)"}],
    }  # fmt: skip
    result = api.build(accentuate=True, diversity=2, **keys)
    assert not result.failed  # the composed picture is not a unit: it starts from noise
    dataset, plan = load_registry().load_dataset("shapes/val"), result.plan
    for unit, record in zip(plan.units, result.manifest["layers"][0]["units"], strict=True):
        index = record["examples"][0]["index"]
        assert unit.main.spec["start"] == {"examples": plan.dataset.keys["output"], "index": index}
        start = prepare(dataset[index][0], plan.adapter).transpose(1, 2, 0)
        assert np.abs(unit.main.start / 255 - start).max() <= 1 / 255
        assert not unit.diversity.settings.seeded  # a diverse set starts from noise
    again = api.build(accentuate=True, diversity=2, **keys)
    assert again.computed == 0  # the starts are known from the cached examples
    plain = api.build(diversity=2, **keys)
    assert plain.computed == 7  # accentuated pictures are keyed apart from plain ones


def test_visualize_cannot_accentuate_without_a_data_set(adapter, registry):
    with pytest.raises(AtlasError, match="seed_image"):
        api.visualize(adapter, "channel('conv2', 1)", accentuate=True, registry=registry)


def _judge_build(tmp_path, **extra):
    return api.build(
        model="shapes/unet", layers=["output"], weights="default", size=32, steps=8,
        cache_dir=tmp_path / "cache", out_dir=tmp_path / "site", show_progress=False, **extra,
    )  # fmt: skip


def test_judged_share_is_the_judges_reading_of_the_sites_pictures(tmp_path, monkeypatch):
    loaded = []
    original = Registry.load_model

    def spy(self, source, *args, **kwargs):
        model = original(self, source, *args, **kwargs)
        if source == "shapes/judge":
            loaded.append(model)
            ran_with_grad = model.ran_with_grad = []
            model.module.register_forward_hook(
                lambda *_: ran_with_grad.append(torch.is_grad_enabled())
            )
        return model

    plain = _judge_build(tmp_path)
    assert all(u["judged_share"] is None for u in plain.manifest["layers"][0]["units"])
    monkeypatch.setattr(Registry, "load_model", spy)
    judged = _judge_build(tmp_path, judge="shapes/judge")
    assert judged.computed == 0  # adding a judge recomputes no picture
    (judge,) = loaded
    assert judge.ran_with_grad and not any(judge.ran_with_grad)  # never differentiated
    assert all(p.grad is None for p in judge.module.parameters())
    units = judged.manifest["layers"][0]["units"]
    pictures = np.stack([decode_png((tmp_path / "site" / u["image"]).read_bytes()) for u in units])
    expected = judge_shares(judge, pictures, [u["channel"] for u in units])
    assert [u["judged_share"] for u in units] == pytest.approx(expected.tolist(), abs=1e-4)
    assert judged.manifest["judge"]["source"] == "shapes/judge"
    page = (tmp_path / "site" / units[1]["page"]).read_text()
    assert "Judged by shapes/judge" in page


def test_the_judge_is_never_the_visualised_model(tmp_path):
    with pytest.raises(AtlasError, match="another model"):
        _judge_build(tmp_path, judge="shapes/unet")


def test_a_classifier_judge_gives_its_probability(adapter):
    pictures = np.random.default_rng(0).random((3, 32, 32, 3), dtype=np.float32)
    shares = judge_shares(adapter, pictures, [0, 1, 3])
    with torch.no_grad():
        probs = adapter.module(
            adapter.input.normalize(torch.from_numpy(pictures).permute(0, 3, 1, 2))
        )
    expected = probs.softmax(1)[torch.arange(3), torch.tensor([0, 1, 3])].numpy()
    assert shares == pytest.approx(expected, abs=1e-4)


def test_spectrum_from_a_data_set_source(tmp_path, adapter, registry):
    out = tmp_path / "shapes.npy"
    result = atlas("spectrum", "shapes/val", "--out", str(out), "--size", "32", "--samples", "20")
    assert result.returncode == 0, result.stderr
    spectrum = np.load(out)
    assert spectrum.shape == (3, 32, 17) and np.isfinite(spectrum).all() and spectrum.max() > 0
    missing = atlas("spectrum", "nosuch/set", "--out", str(out))
    assert missing.returncode == 4 and "nosuch" in missing.stderr
    made = api.visualize(
        adapter, "channel('conv2', 1)", param="maco", spectrum=str(out), steps=2, size=32,
        cache=False, progress=False, registry=registry,
    )  # fmt: skip
    assert np.isfinite(made.images).all()


def test_a_dry_run_estimates_accentuated_units_before_their_examples_exist(write_recipe):
    recipe = write_recipe(
        "dry",
        render={**TINY["render"], "accentuate": True},
        dataset={"source": "shapes/val", "samples": 16},
    )
    result = atlas("build", str(recipe), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "23 to compute" in result.stdout and "estimated time" in result.stdout
