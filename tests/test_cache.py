import os

import numpy as np
import pytest

from atlas.store.cache import Cache, digest


def image():
    return np.random.default_rng(0).random((8, 10, 3)).astype(np.float32)


def test_round_trip(tmp_path):
    cache = Cache(tmp_path)
    key = digest({"unit": 1})
    cache.put(key, image(), {"layer": "a"})
    entry = cache.get(key)
    assert entry.meta["layer"] == "a"
    np.testing.assert_allclose(entry.image(), image(), atol=1e-3)
    assert entry.png.read_bytes()[:4] == b"\x89PNG"


def test_key_ignores_dict_order():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})


def test_damaged_entry_is_detected_and_removed(tmp_path):
    cache = Cache(tmp_path)
    key = digest({"unit": 2})
    entry = cache.put(key, image(), {})
    entry.png.write_bytes(entry.png.read_bytes()[:20])  # truncated, as after a crash
    assert cache.get(key) is None
    assert not entry.png.exists()


def test_entry_without_metadata_counts_as_missing(tmp_path):
    cache = Cache(tmp_path)
    key = digest({"unit": 3})
    entry = cache.put(key, image(), {})
    (entry.png.with_suffix(".json")).unlink()  # killed before the commit marker
    assert cache.get(key) is None


def test_no_temporary_files_are_left(tmp_path):
    cache = Cache(tmp_path)
    cache.put(digest({"unit": 4}), image(), {})
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("failing", [".npy", ".json"])
def test_a_write_that_fails_half_way_leaves_nothing_readable(tmp_path, monkeypatch, failing):
    cache = Cache(tmp_path)
    key = digest({"unit": 5})
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith(failing):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="No space left"):
        cache.put(key, image(), {})
    monkeypatch.setattr(os, "replace", real_replace)
    assert cache.get(key) is None
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
