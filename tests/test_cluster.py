"""Builds on a real dask.distributed cluster on localhost: started by atlas, or by hand."""

import json

import pytest
from helpers import TINY_PICTURES, assert_same_pictures, atlas_build, recipe_toml

import atlas as atlas_api
from atlas.errors import AtlasError

pytestmark = pytest.mark.e2e  # the real atlas command, workers, a cluster or the browser

distributed = pytest.importorskip("distributed")

RECIPE = recipe_toml(
    dataset={"source": "shapes/val", "samples": 48, "top_k": 2}, connections={"top": 3}
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same recipe built in this process (no workers)."""
    root = tmp_path_factory.mktemp("reference")
    (root / "tiny.toml").write_text(RECIPE)
    assert atlas_build(root / "tiny.toml", root).returncode == 0
    return root


def examples(site):
    """Return every unit's dataset examples and strongest inputs."""
    manifest = json.loads((site / "manifest.json").read_text())
    return [
        ([e["index"] for e in u["examples"]], [(i["channel"], i["weight"]) for i in u["inputs"]])
        for layer in manifest["layers"]
        for u in layer["units"]
    ]


def same_connections(site, other):
    """Assert two builds found the same inputs, up to float rounding of other batches."""
    for (_, mine), (_, theirs) in zip(examples(site), examples(other), strict=True):
        assert [c for c, _ in mine] == [c for c, _ in theirs]
        assert [w for _, w in mine] == pytest.approx([w for _, w in theirs], abs=1e-3)


def test_a_local_cluster_makes_the_same_atlas(reference, tmp_path):
    result = atlas_build(reference / "tiny.toml", tmp_path, "--backend", "dask", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    assert f"computed {TINY_PICTURES} pictures, 0 from the cache" in result.stderr
    assert_same_pictures(tmp_path / "site", reference / "site")
    found, expected = examples(tmp_path / "site"), examples(reference / "site")
    assert [e for e, _ in found] == [e for e, _ in expected]
    assert any(inputs for _, inputs in found)
    same_connections(tmp_path / "site", reference / "site")


def test_loky_workers_find_the_same_connections(reference, tmp_path):
    result = atlas_build(reference / "tiny.toml", tmp_path, "--jobs", "2", "--batch-size", "5")
    assert result.returncode == 0, result.stderr
    same_connections(tmp_path / "site", reference / "site")


def test_a_scheduler_started_by_hand_is_used(reference, tmp_path):
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        result = atlas_build(reference / "tiny.toml", tmp_path, "--scheduler", address)
        assert result.returncode == 0, result.stderr
        with distributed.Client(address) as client:  # the tasks ran on that cluster's workers
            prefixes = client.run_on_scheduler(
                lambda dask_scheduler: list(dask_scheduler.task_prefixes)
            )
    assert "run_on_worker" in prefixes
    assert_same_pictures(tmp_path / "site", reference / "site")


def test_an_unreachable_scheduler_is_a_one_line_error(tmp_path, reference):
    result = atlas_build(reference / "tiny.toml", tmp_path, "--scheduler", "tcp://127.0.0.1:9")
    assert result.returncode == 4
    (line,) = result.stderr.strip().splitlines()
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in line


def test_a_live_module_is_not_sent_to_a_cluster(tmp_path):
    from conftest import TinyCNN

    with pytest.raises(AtlasError, match="a live module cannot be sent to a Dask cluster"):
        atlas_api.build(
            model=TinyCNN(),
            layers=["conv1"],
            options={"input_size": 16},
            steps=1,
            cache_dir=tmp_path,
            out_dir=tmp_path / "s",
            show_progress=False,
            backend="dask",
        )
