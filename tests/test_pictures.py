"""End to end: a recipe with composed pictures, negative pictures and diversity sets."""

import json

import pytest
from helpers import atlas, atlas_build, broken_links

pytestmark = pytest.mark.e2e  # the real atlas command, workers, a cluster or the browser

RECIPE = """
title = "Composed"
layers = ["output"]
[model]
source = "shapes/unet"
[render]
size = 32
steps = 8
negative = true
diversity = 2
[run]
max_channels = 2
[[pictures]]
name = "circle - square"
objective = "channel('output', 'circle') - channel('output', 'square')"
[[pictures]]
name = "masked <b>"
objective = "channel('output', 'circle', mask='left') + channel('output', 2, mask=[0.5, 0, 1, 1])"
steps = 5
seed = 3
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")
    recipe = root / "composed.toml"
    recipe.write_text(RECIPE)
    result = atlas_build(recipe, root)
    assert result.returncode == 0, result.stderr
    return root, recipe, result


def test_manifest_lists_every_picture_with_its_fields(built):
    site = built[0] / "site"
    manifest = json.loads((site / "manifest.json").read_text())
    pictures = manifest["pictures"]
    assert [p["name"] for p in pictures] == ["circle - square", "masked <b>"]
    assert pictures[0]["objective"] == RECIPE.split('objective = "')[1].split('"\n')[0]
    for picture in pictures:
        assert set(picture) >= {
            "name",
            "objective",
            "page",
            "image",
            "thumb",
            "objective_final",
            "error",
        }
        assert picture["error"] is None and isinstance(picture["objective_final"], float)
        assert (site / picture["page"]).exists() and (site / picture["image"]).exists()
        assert (site / picture["thumb"]).exists()
    assert broken_links(site) == []


def test_every_unit_has_its_negative_and_diversity_set(built):
    site = built[0] / "site"
    units = json.loads((site / "manifest.json").read_text())["layers"][0]["units"]
    assert len(units) == 2
    for unit in units:
        negative = unit["negative"]
        assert set(negative) >= {"image", "thumb", "objective_final"}
        # the unit's value on its negative picture is below where optimisation started
        assert negative["objective_final"] < unit["curve"][0] - 0.1
        assert len(unit["diversity"]) == 2
        for picture in [negative, *unit["diversity"]]:
            assert (site / picture["image"]).exists() and (site / picture["thumb"]).exists()
        page = (site / unit["page"]).read_text()
        assert "Negative" in page and "Diversity set" in page
        assert page.count('class="picture"') == 1 + 1 + 2


def test_a_picture_override_changes_its_settings_only(built):
    root = built[0]
    entries = [json.loads(p.read_text()) for p in (root / "cache").rglob("*.json")]
    steps = {e["name"]: e["steps"] for e in entries if "picture" in e}
    assert steps == {"picture 'circle - square'": 8, "picture 'masked <b>'": 5}


def test_picture_names_are_escaped_on_the_site(built):
    site = built[0] / "site"
    listing = (site / "pictures.html").read_text()
    assert "masked &lt;b&gt;" in listing and "masked <b>" not in listing
    assert "pictures.html" in (site / "index.html").read_text()


def test_dry_run_counts_pictures_and_a_rebuild_computes_nothing(built):
    root, recipe, first = built
    assert "computed 10 pictures, 0 from the cache" in first.stderr  # 2 x (1 + 1 + 2) + 2
    plan = json.loads(
        atlas(
            "build", str(recipe), "--dry-run", "--json", "--cache-dir", str(root / "cache")
        ).stdout
    )
    assert (plan["pictures_total"], plan["pictures_cached"], plan["units_to_compute"]) == (2, 2, 0)
    again = atlas_build(recipe, root)
    assert "nothing computed" in again.stderr


def test_a_bad_label_in_a_picture_is_a_one_line_error(tmp_path):
    recipe = tmp_path / "bad.toml"
    recipe.write_text(RECIPE.replace("'square'", "'sqaure'"))
    result = atlas_build(recipe, tmp_path)
    assert result.returncode == 4
    (line,) = result.stderr.strip().splitlines()
    assert "picture 'circle - square'" in line and "unknown label 'sqaure'" in line
    assert "did you mean: square" in line
