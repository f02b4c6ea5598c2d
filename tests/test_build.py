"""End to end: the real ``atlas build`` on a tiny recipe."""

import json

import cv2
import pytest
import torch
from helpers import (
    EVERY_TABLE,
    EVERY_TABLE_PICTURES,
    TINY_PICTURES,
    assert_same_pictures,
    atlas,
    atlas_build,
    broken_links,
    links,
    recipe_toml,
)

pytestmark = pytest.mark.e2e  # the real atlas command, workers, a cluster or the browser


def dry_run(recipe_path, cache) -> dict:
    """Return ``atlas build --dry-run --json`` of a recipe against a cache."""
    args = ("build", str(recipe_path), "--dry-run", "--json", "--cache-dir", str(cache))
    return json.loads(atlas(*args).stdout)


def test_build_prints_index_path_last(every_table):
    last = every_table.result.stdout.strip().splitlines()[-1]
    assert last == str((every_table.site / "index.html").resolve())
    assert (
        f"computed {EVERY_TABLE_PICTURES} pictures, 0 from the cache" in every_table.result.stderr
    )


def test_site_has_every_page_and_image(every_table):
    site = every_table.site
    manifest = json.loads((site / "manifest.json").read_text())
    assert [layer["name"] for layer in manifest["layers"]] == ["enc1", "output"]
    assert manifest["units_total"] == TINY_PICTURES
    for layer in manifest["layers"]:
        assert (site / layer["page"]).exists()
        for unit in layer["units"]:
            assert (site / unit["page"]).exists() and (site / unit["image"]).exists()


def test_links_are_relative_and_resolve(every_table):
    site = every_table.site
    assert broken_links(site) == []
    layer_links = links(site / "index.html")
    assert "layers/output.html" in layer_links and "layers/enc1.html" in layer_links
    assert "../units/output/3.html" in links(site / "layers" / "output.html")


def test_class_channels_carry_class_names(every_table):
    page = (every_table.site / "layers" / "output.html").read_text()
    for name in ("circle", "square", "triangle", "horizontal stripes", "checkerboard"):
        assert name in page
    assert "triangle" in (every_table.site / "units" / "output" / "3.html").read_text()


def test_second_build_computes_nothing(every_table, tmp_path):
    again = atlas_build(every_table.recipe, tmp_path, "--cache-dir", str(every_table.cache))
    assert again.returncode == 0, again.stderr
    expected = f"all {EVERY_TABLE_PICTURES} pictures came from the cache; nothing computed"
    assert expected in again.stderr


def test_dry_run_json_reports_the_cache(every_table, tmp_path):
    plan = dry_run(every_table.recipe, every_table.cache)
    tasks = TINY_PICTURES * 3  # each unit's picture, negative and diversity set (one task)
    assert (plan["units_total"], plan["units_cached"], plan["units_to_compute"]) == (
        tasks,
        tasks,
        0,
    )
    fresh = dry_run(every_table.recipe, tmp_path / "empty")
    assert (fresh["units_cached"], fresh["units_to_compute"]) == (0, tasks)


def test_changed_recipe_recomputes_only_what_changed(every_table, write_recipe):
    changed = write_recipe("more", EVERY_TABLE, layers=["output", "enc1", "enc2"])
    plan = dry_run(changed, every_table.cache)
    cached = TINY_PICTURES * 3
    assert (plan["units_cached"], plan["units_to_compute"]) == (cached, 32 * 3)
    assert plan["dataset"]["layers_to_compute"] == ["enc2"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["layers", "shapes/unte"], "unknown shapes model 'unte' (did you mean: unet?)"),
        (
            ["layers", "torchvison/resnet18"],
            "unknown model namespace 'torchvison' (did you mean: torchvision?)",
        ),
    ],
)
def test_unknown_names_exit_4_with_close_matches(args, message):
    result = atlas(*args)
    assert result.returncode == 4
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def build_bad(tmp_path, text):
    """Build a recipe that should be refused; return the recipe path and the result."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path, atlas("build", str(path), "--cache-dir", str(tmp_path / "c"))


def test_unknown_layer_exits_4_naming_it(tmp_path):
    _, result = build_bad(tmp_path, recipe_toml(layers=["output", "enc3"]))
    assert result.returncode == 4
    assert (
        "unknown layer of shapes/unet 'enc3' (did you mean: enc2, enc1, dec2?); "
        "run `atlas layers shapes/unet` to list them"
    ) in result.stderr


def test_layers_lists_shapes_and_channels():
    result = atlas("layers", "shapes/unet", "--json")
    layers = {layer["name"]: layer for layer in json.loads(result.stdout)}
    assert layers["enc2"]["shape"] == [32, 32, 32] and layers["enc2"]["channels"] == 32
    assert layers["output"]["channels"] == 7


def test_worker_processes_give_the_same_pictures(every_table, write_recipe, tmp_path):
    result = atlas_build(write_recipe(), tmp_path, "--jobs", "2", "--batch-size", "4")
    assert result.returncode == 0, result.stderr
    assert f"computed {TINY_PICTURES} pictures" in result.stderr
    assert_same_pictures(tmp_path / "site", every_table.site)


def test_unknown_parameterization_exits_4_before_any_work(tmp_path):
    path, result = build_bad(tmp_path, recipe_toml(render={"param": "fftt"}))
    assert result.returncode == 4
    assert (
        f"{path}: key 'render.param': unknown parameterization 'fftt' (did you mean: fft?)"
    ) in result.stderr
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").rglob("*.png"))


@pytest.mark.parametrize(
    "tables, message",
    [
        ({"render": {"objective": "layer"}}, "objective 'layer' does not take channels"),
        ({"run": {"device": "cuda:0"}}, "torch sees no CUDA device here"),
        ({"run": {"device": "tpu9"}}, "unknown device 'tpu9'"),
    ],
)
def test_settings_that_cannot_work_exit_4_before_any_work(tmp_path, tables, message):
    if "cuda" in str(tables) and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _, result = build_bad(tmp_path, recipe_toml(**tables))
    assert result.returncode == 4, result.stderr
    assert message in result.stderr


def test_dry_run_estimates_the_time_the_build_then_takes(tmp_path, write_recipe):
    longer = write_recipe("longer", render={"steps": 60})
    cache = tmp_path / "cache"
    guess = dry_run(longer, cache)["estimate"]
    n = TINY_PICTURES
    assert guess["pictures"] == n and guess["device"] == "cpu" and guess["kinds_timed"] == 2
    text = atlas("build", str(longer), "--dry-run", "--cache-dir", str(cache)).stdout
    assert "estimated time: about" in text and f"to optimise {n} pictures on cpu" in text
    assert atlas_build(longer, tmp_path).returncode == 0
    metas = [json.loads(p.read_text()) for p in cache.glob("??/*.json")]
    spent = sum(meta["seconds"] for meta in metas if "seconds" in meta)
    assert len(metas) == n
    assert spent / 3 < guess["seconds"] < spent * 3, (guess["seconds"], spent)
    assert dry_run(longer, cache)["estimate"] is None  # nothing left to compute


def test_class_channels_are_detectors_of_their_own_classes(every_table):
    manifest = json.loads((every_table.site / "manifest.json").read_text())
    classes = manifest["concepts"]["classes"]
    assert manifest["concepts"]["kind"] == "iou" and classes[1] == "circle"
    output = next(layer for layer in manifest["layers"] if layer["name"] == "output")
    assert [u["concept"] for u in output["units"][1:]] == classes[1:]
    assert output["summary"]["detectors"] == 6 and output["summary"]["unique_concepts"] == 6
    page = (every_table.site / output["page"]).read_text()
    assert "6</strong> of 7 units are detectors of <strong>6</strong> concepts" in page
    assert page.count("<rect") == 6  # a bar per concept
    example = every_table.site / output["units"][1]["examples"][0]["image"]
    alpha = cv2.imread(str(example), cv2.IMREAD_UNCHANGED)[..., 3]
    assert alpha.max() == 255 and alpha.min() == round(255 * 0.2)  # the mask, the rest dimmed
