"""Where a build writes when nothing is said, and when --out and --cache-dir say it.

No ATLAS_CACHE_DIR here (the other tests set one for every test, which hid that weight
digests went to the default cache whatever --cache-dir said)."""

import os

import pytest
from helpers import TINY_PICTURES, atlas, recipe_toml

pytestmark = pytest.mark.e2e  # the real atlas command, workers, a cluster or the browser


def clean_env(home):
    env = {k: v for k, v in os.environ.items() if k not in ("ATLAS_CACHE_DIR", "XDG_CACHE_HOME")}
    return {**env, "HOME": str(home)}


def test_defaults_go_to_site_name_and_the_home_cache(tmp_path):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    (work / "tiny.toml").write_text(recipe_toml())
    result = atlas("build", "tiny.toml", "--quiet", cwd=work, env=clean_env(home))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(work / "site" / "tiny" / "index.html")
    cache = home / ".cache" / "feature-atlas"
    assert (cache / "digests.json").is_file() and len(list(cache.rglob("*.png"))) == TINY_PICTURES


def test_out_and_cache_dir_take_everything_there(tmp_path):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    (work / "tiny.toml").write_text(recipe_toml())
    args = ("build", "tiny.toml", "--quiet", "--out", "mine", "--cache-dir", "store")
    result = atlas(*args, cwd=work, env=clean_env(home))
    assert result.returncode == 0, result.stderr
    assert (work / "mine" / "index.html").is_file()
    assert (work / "store" / "digests.json").is_file()
    assert len(list((work / "store").rglob("*.png"))) == TINY_PICTURES
    assert not (home / ".cache").exists() and not (work / "site").exists()
