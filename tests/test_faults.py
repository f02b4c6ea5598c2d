"""A unit that kills its own worker process fails with the units its worker held; the build
carries on."""

import json

import pytest
from helpers import atlas_build, plugin_env, recipe_toml

pytestmark = pytest.mark.e2e  # the real atlas command, workers, a cluster or the browser

KILLER = '''
import os
import signal

from atlas.plugin import hookimpl
from atlas.engine.objectives import Channel


class Killer(Channel):
    """Channel 3 of enc1 kills the worker process that optimises it."""

    def __init__(self, layer, channels, mask=None):
        super().__init__(layer, channels, mask)
        self.home = os.getpid()  # the planning process, which must survive

    def __call__(self, acts):
        if self.layer == "enc1" and 3 in [self.channels] and os.getpid() != self.home:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__(acts)


@hookimpl
def feature_atlas_register_objectives(register):
    register("killer", Killer, channels=True)
'''


@pytest.fixture
def killer_env(tmp_path):
    """An installed plugin whose objective kills the worker process that runs it."""
    return plugin_env(tmp_path, "killer", KILLER)


@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_a_unit_that_kills_its_worker_fails_alone(tmp_path, killer_env, backend):
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        recipe_toml(render={"steps": 4, "objective": "killer"}, run={"batch_size": 4})
    )
    out = tmp_path / "site"
    args = ("--jobs", "2", "--backend", backend)
    result = atlas_build(recipe, tmp_path, *args, env=killer_env)
    assert result.returncode == 1, result.stderr
    failures = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    held = [f"enc1 channel {c}" for c in range(4)]  # the batch of 4 the dying worker held
    assert sorted(line.split(":")[1].strip() for line in failures) == held
    died = "its worker process died" if backend == "loky" else "its Dask task failed"
    assert died in failures[0]
    assert "computed 19 pictures" in result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    errors = [u["channel"] for layer in manifest["layers"] for u in layer["units"] if u["error"]]
    assert errors == [0, 1, 2, 3]
