"""End to end: a recipe with composed pictures, negative pictures and diversity sets."""

import json

import pytest
from helpers import (
    EVERY_TABLE,
    EVERY_TABLE_PICTURES,
    LABELS,
    TINY_PICTURES,
    atlas,
    atlas_build,
    broken_links,
)

pytestmark = pytest.mark.e2e  # the real atlas command, workers, a cluster or the browser


def manifest(built) -> dict:
    return json.loads((built.site / "manifest.json").read_text())


def test_manifest_lists_every_picture_with_its_fields(every_table):
    site = every_table.site
    pictures = manifest(every_table)["pictures"]
    assert [p["name"] for p in pictures] == [p["name"] for p in EVERY_TABLE["pictures"]]
    assert pictures[0]["objective"] == EVERY_TABLE["pictures"][0]["objective"]
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
        assert (site / picture["thumb"]["image"]).exists()
    assert broken_links(site) == []


def test_every_unit_has_its_negative_and_diversity_set(every_table):
    site = every_table.site
    units = [u for layer in manifest(every_table)["layers"] for u in layer["units"]]
    assert len(units) == TINY_PICTURES
    for unit in units:
        negative = unit["negative"]
        assert set(negative) >= {"image", "size", "objective_final"}
        if unit["label"] in LABELS[:2]:  # 6 steps move these two logits well apart
            assert negative["objective_final"] < unit["curve"][0] - 0.1
        assert len(unit["diversity"]) == 2
        for picture in [negative, *unit["diversity"]]:
            assert (site / picture["image"]).exists()
        page = (site / unit["page"]).read_text()
        assert "Negative" in page and "Diversity set" in page
        assert page.count('class="picture"') == 1 + 1 + 2


def test_a_picture_override_changes_its_settings_only(every_table):
    entries = [json.loads(p.read_text()) for p in every_table.cache.glob("??/*.json")]
    steps = {e["name"]: e["steps"] for e in entries if "picture" in e}
    first = EVERY_TABLE["pictures"][0]["name"]
    assert steps == {f"picture {first!r}": 6, "picture 'masked <b>'": 5}


def test_picture_names_are_escaped_on_the_site(every_table):
    site = every_table.site
    listing = (site / "pictures.html").read_text()
    assert "masked &lt;b&gt;" in listing and "masked <b>" not in listing
    assert "pictures.html" in (site / "index.html").read_text()


def test_dry_run_counts_pictures_and_a_rebuild_computes_nothing(every_table, tmp_path):
    first = every_table.result
    assert f"computed {EVERY_TABLE_PICTURES} pictures, 0 from the cache" in first.stderr
    args = ("--dry-run", "--json", "--cache-dir", str(every_table.cache))
    plan = json.loads(atlas("build", str(every_table.recipe), *args).stdout)
    assert (plan["pictures_total"], plan["pictures_cached"], plan["units_to_compute"]) == (2, 2, 0)
    again = atlas_build(every_table.recipe, tmp_path, "--cache-dir", str(every_table.cache))
    assert "nothing computed" in again.stderr


def test_a_bad_label_in_a_picture_is_a_one_line_error(tmp_path, write_recipe):
    picture = {"name": "circle - square", "objective": "channel('output', 'sqaure')"}
    result = atlas_build(write_recipe("bad", pictures=[picture]), tmp_path)
    assert result.returncode == 4
    (line,) = result.stderr.strip().splitlines()
    assert "picture 'circle - square'" in line and "unknown label 'sqaure'" in line
    assert "did you mean: square" in line
