"""End to end: the real ``atlas build`` on a tiny recipe."""

import json

import pytest
import torch
from helpers import TINY_RECIPE, assert_same_pictures, atlas, atlas_build, broken_links, links

pytestmark = pytest.mark.e2e  # the real atlas command, workers, a cluster or the browser


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    recipe = root / "tiny.toml"
    recipe.write_text(TINY_RECIPE)
    first = atlas(
        "build", str(recipe), "--out", str(root / "site"), "--cache-dir", str(root / "cache")
    )
    assert first.returncode == 0, first.stderr
    return root, recipe, first


def test_build_prints_index_path_last(built):
    root, _, first = built
    assert first.stdout.strip().splitlines()[-1] == str((root / "site" / "index.html").resolve())
    assert "computed 23 pictures, 0 from the cache" in first.stderr


def test_site_has_every_page_and_image(built):
    root = built[0]
    site = root / "site"
    manifest = json.loads((site / "manifest.json").read_text())
    assert [layer["name"] for layer in manifest["layers"]] == ["enc1", "output"]
    assert manifest["units_total"] == 16 + 7
    for layer in manifest["layers"]:
        assert (site / layer["page"]).exists()
        for unit in layer["units"]:
            assert (site / unit["page"]).exists() and (site / unit["image"]).exists()


def test_links_are_relative_and_resolve(built):
    site = built[0] / "site"
    assert broken_links(site) == []
    layer_links = links(site / "index.html")
    assert "layers/output.html" in layer_links and "layers/enc1.html" in layer_links
    assert "../units/output/3.html" in links(site / "layers" / "output.html")


def test_class_channels_carry_class_names(built):
    page = (built[0] / "site" / "layers" / "output.html").read_text()
    for name in ("circle", "square", "triangle", "horizontal stripes", "checkerboard"):
        assert name in page
    assert "triangle" in (built[0] / "site" / "units" / "output" / "3.html").read_text()


def test_second_build_computes_nothing(built):
    root, recipe, _ = built
    again = atlas(
        "build", str(recipe), "--out", str(root / "site2"), "--cache-dir", str(root / "cache")
    )
    assert again.returncode == 0, again.stderr
    assert "all 23 pictures came from the cache; nothing computed" in again.stderr


def test_dry_run_json_reports_the_cache(built):
    root, recipe, _ = built
    plan = json.loads(
        atlas(
            "build", str(recipe), "--dry-run", "--json", "--cache-dir", str(root / "cache")
        ).stdout
    )
    assert (plan["units_total"], plan["units_cached"], plan["units_to_compute"]) == (23, 23, 0)
    fresh = json.loads(
        atlas(
            "build", str(recipe), "--dry-run", "--json", "--cache-dir", str(root / "empty")
        ).stdout
    )
    assert (fresh["units_cached"], fresh["units_to_compute"]) == (0, 23)


def test_changed_recipe_recomputes_only_what_changed(built):
    root = built[0]
    changed = root / "more.toml"
    changed.write_text(TINY_RECIPE.replace('["output", "enc1"]', '["output", "enc1", "enc2"]'))
    plan = json.loads(
        atlas(
            "build", str(changed), "--dry-run", "--json", "--cache-dir", str(root / "cache")
        ).stdout
    )
    assert (plan["units_cached"], plan["units_to_compute"]) == (23, 32)


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
    recipe = tmp_path / "bad.toml"
    recipe.write_text(text)
    return recipe, atlas("build", str(recipe), "--cache-dir", str(tmp_path / "c"))


def test_unknown_layer_exits_4_naming_it(tmp_path):
    _, result = build_bad(tmp_path, TINY_RECIPE.replace('"enc1"', '"enc3"'))
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


def test_worker_processes_give_the_same_pictures(built, tmp_path):
    root, recipe, _ = built
    result = atlas_build(recipe, tmp_path, "--jobs", "2", "--batch-size", "4")
    assert result.returncode == 0, result.stderr
    assert "computed 23 pictures" in result.stderr
    assert_same_pictures(tmp_path / "site", root / "site")


def test_unknown_parameterization_exits_4_before_any_work(tmp_path):
    recipe, result = build_bad(
        tmp_path, TINY_RECIPE.replace("steps = 6", 'steps = 6\nparam = "fftt"')
    )
    assert result.returncode == 4
    assert (
        f"{recipe}: key 'render.param': unknown parameterization 'fftt' (did you mean: fft?)"
    ) in result.stderr
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").rglob("*.png"))


@pytest.mark.parametrize(
    "section, line, message",
    [
        ("[render]", 'objective = "layer"', "objective 'layer' does not take channels"),
        ("[run]", 'device = "cuda:0"', "torch sees no CUDA device here"),
        ("[run]", 'device = "tpu9"', "unknown device 'tpu9'"),
    ],
)
def test_settings_that_cannot_work_exit_4_before_any_work(tmp_path, section, line, message):
    if "cuda" in line and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _, result = build_bad(tmp_path, TINY_RECIPE.replace(section, f"{section}\n{line}", 1))
    assert result.returncode == 4, result.stderr
    assert message in result.stderr


def test_dry_run_estimates_the_time_the_build_then_takes(tmp_path):
    recipe = tmp_path / "longer.toml"
    recipe.write_text(TINY_RECIPE.replace("steps = 6", "steps = 60"))
    cache = str(tmp_path / "cache")
    guess = json.loads(
        atlas("build", str(recipe), "--dry-run", "--json", "--cache-dir", cache).stdout
    )["estimate"]
    assert guess["pictures"] == 23 and guess["device"] == "cpu" and guess["kinds_timed"] == 2
    text = atlas("build", str(recipe), "--dry-run", "--cache-dir", cache).stdout
    assert "estimated time: about" in text and "to optimise 23 pictures on cpu" in text
    assert atlas_build(recipe, tmp_path).returncode == 0
    metas = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("??/*.json")]
    spent = sum(meta["seconds"] for meta in metas if "seconds" in meta)
    assert len(metas) == 23
    assert spent / 3 < guess["seconds"] < spent * 3, (guess["seconds"], spent)
    done = json.loads(
        atlas("build", str(recipe), "--dry-run", "--json", "--cache-dir", cache).stdout
    )
    assert done["estimate"] is None  # nothing left to compute
