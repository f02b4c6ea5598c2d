"""`atlas cache info` and `atlas cache prune`, and several builds sharing one cache."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from helpers import (
    EVERY_TABLE_PICTURES,
    TINY_PICTURES,
    assert_same_pictures,
    atlas,
    atlas_build,
    recipe_toml,
)

pytestmark = pytest.mark.e2e  # the real atlas command, workers, a cluster or the browser

OTHER = recipe_toml(layers=["enc2"], run={"max_channels": 2})
WITH_DATA = recipe_toml(dataset={"source": "shapes/val", "samples": 32, "top_k": 2})
A = EVERY_TABLE_PICTURES  # the pictures of a.toml (the session's every-table recipe)


@pytest.fixture(scope="module")
def built(tmp_path_factory, every_table):
    """One cache holding the pictures of two recipes: the session's every-table build (a,
    with dataset examples of two layers) and b, two pictures of another layer."""
    tmp_path = tmp_path_factory.mktemp("shared")
    shutil.copy(every_table.recipe, tmp_path / "a.toml")
    shutil.copytree(every_table.cache, tmp_path / "cache")
    (tmp_path / "b.toml").write_text(OTHER)
    result = atlas_build(tmp_path / "b.toml", tmp_path, "--out", str(tmp_path / "site-b"))
    assert result.returncode == 0, result.stderr
    return tmp_path


@pytest.fixture
def shared(built, tmp_path):
    """A copy of the built cache and recipes that a test may prune."""
    for name in ("a.toml", "b.toml"):
        shutil.copy(built / name, tmp_path / name)
    shutil.copytree(built / "cache", tmp_path / "cache")
    return tmp_path


def cache_info(root):
    return json.loads(atlas("cache", "info", "--json", "--cache-dir", str(root / "cache")).stdout)


def test_info_counts_pictures_examples_and_models(shared):
    found = cache_info(shared)
    assert (found["pictures"], found["examples"]) == (A + 2, 2)
    ((model, row),) = found["models"].items()
    assert model.startswith("shapes/unet (") and row["pictures"] == A + 2 and row["bytes"] > 0
    text = atlas("cache", "info", "--cache-dir", str(shared / "cache")).stdout
    assert f"{A + 2} pictures, 2 layers of dataset examples" in text


def test_prune_keeps_what_a_recipe_uses(shared):
    args = (
        "cache",
        "prune",
        "--cache-dir",
        str(shared / "cache"),
        "--keep",
        str(shared / "a.toml"),
    )
    dry = atlas(*args, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.startswith("would remove 2 pictures and 0 layers")
    assert cache_info(shared)["pictures"] == A + 2
    assert atlas(*args).stdout.startswith("removed 2 pictures")
    assert (cache_info(shared)["pictures"], cache_info(shared)["examples"]) == (A, 2)
    plan = json.loads(
        atlas(
            "build",
            str(shared / "a.toml"),
            "--dry-run",
            "--json",
            "--cache-dir",
            str(shared / "cache"),
        ).stdout
    )
    assert plan["units_to_compute"] == 0 and plan["dataset"]["cached"]


def test_prune_by_age_removes_what_was_not_used(shared):
    old = time.time() - 10 * 86_400
    stale = sorted((shared / "cache").glob("??/*.json"))[:5]
    for path in stale:
        os.utime(path, (old, old))
    result = atlas("cache", "prune", "--older-than", "5", "--cache-dir", str(shared / "cache"))
    assert result.stdout.startswith("removed 5 pictures")
    assert not any(p.exists() or p.with_suffix(".png").exists() for p in stale)
    assert cache_info(shared)["pictures"] == A + 2 - 5


def test_prune_needs_to_be_told_what(tmp_path):
    result = atlas("cache", "prune", "--cache-dir", str(tmp_path))
    assert result.returncode == 4 and "--older-than DAYS and/or --keep RECIPE" in result.stderr


def test_two_builds_can_share_a_cache_at_once(tmp_path):
    (tmp_path / "r.toml").write_text(WITH_DATA)
    command = [
        sys.executable,
        "-m",
        "atlas",
        "build",
        str(tmp_path / "r.toml"),
        "-q",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    runs = [
        subprocess.Popen(
            [*command, "--out", str(tmp_path / f"site{i}")], stderr=subprocess.PIPE, text=True
        )
        for i in (1, 2)
    ]
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read()
    assert_same_pictures(tmp_path / "site1", tmp_path / "site2")
    plan = json.loads(
        atlas(
            "build",
            str(tmp_path / "r.toml"),
            "--dry-run",
            "--json",
            "--cache-dir",
            str(tmp_path / "cache"),
        ).stdout
    )
    assert plan["units_cached"] == TINY_PICTURES and plan["dataset"]["cached"]
    assert not list((tmp_path / "cache").rglob("*.tmp"))
