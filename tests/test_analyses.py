"""The seam for analyses of the dataset pass: an analysis sees every batch with its labels,
in as many passes as it needs, and gets a cache entry of its own: adding it recomputes no
examples, a rebuild computes nothing, and the dry run, `cache info` and `prune --keep` know it."""

import numpy as np
import pytest
import torch
from conftest import TinyPlugin

from atlas.datasets import analyses
from atlas.datasets.analyses import Analysis
from atlas.datasets.prepare import prepare
from atlas.models.layers import forward_layers
from atlas.pipeline.build import plan_build, run_build
from atlas.plugin import DatasetSource, hookimpl
from atlas.recipe import ConceptSettings, DatasetSpec, Recipe, RenderSettings
from atlas.registry import load_registry
from atlas.store import maintenance
from atlas.store.cache import Cache
from atlas.store.findings import AnalysisStore


class Dataset:
    """Twelve random images labelled by index parity."""

    def __len__(self):
        return 12

    def __getitem__(self, index):
        rng = np.random.default_rng(index)
        return rng.integers(0, 256, (32, 32, 3), np.uint8), index % 2

    def identity(self):
        return {"test": "parity", "n": 12}


class Means(Analysis):
    """Per unit, the mean channel activation per label; a second pass counts the images
    above that mean (so it needs the first pass's result)."""

    name = "means"
    passes = 2
    seen: list[tuple[str, int, tuple]] = []  # noqa: RUF012 - (layer, pass, indices) per batch
    on = False  # whether builds subscribe it

    @classmethod
    def wants(cls, spec, labels):
        return {"scale": 2.0} if cls.on and labels.kind == "image" else None

    def begin(self, layer, channels, samples):
        self.sums = {label: np.zeros(channels) for label in (0, 1)}
        self.counts = {0: 0, 1: 0}
        self.above = np.zeros(channels)

    def update(self, layer, act, indices, labels, pass_index):
        Means.seen.append((layer, pass_index, tuple(indices)))
        values = act.mean((2, 3)).numpy()
        if pass_index == 0:
            for value, label in zip(values, labels, strict=True):
                self.sums[label] += value
                self.counts[label] += 1
        else:
            self.above += (values > self.mean()).sum(0)

    def mean(self):
        return (self.sums[0] + self.sums[1]) / (self.counts[0] + self.counts[1])

    def result(self, layer):
        means = np.stack([self.sums[k] / self.counts[k] for k in (0, 1)])
        return {"labels": [0, 1], "scale": self.settings["scale"]}, {
            "means": means * self.settings["scale"],
            "above": self.above,
        }


class ParityPlugin:
    """Registers the parity data set as ``parity/all``."""

    @hookimpl
    def feature_atlas_register_datasets(self, register):
        register("parity", DatasetSource(load=lambda name, **options: Dataset()))


@pytest.fixture
def registry():
    return load_registry(extra=[("tiny", TinyPlugin()), ("parity", ParityPlugin())])


@pytest.fixture
def subscribed(monkeypatch):
    """Subscribe Means (once Means.on is set) to every build's dataset pass."""
    monkeypatch.setitem(analyses.ANALYSES, "means", Means)
    monkeypatch.setattr(Means, "on", False)
    return Means


def recipe():
    return Recipe(
        model="test/tiny",
        layers=["conv1"],
        name="tiny",
        render=RenderSettings(size=(16, 16), steps=1),
        max_channels=1,
        batch_size=5,
        dataset=DatasetSpec("parity/all", samples=12, top_k=2, concepts=ConceptSettings(False)),
    )


def test_an_analysis_gets_its_own_entry_and_adds_no_example_work(
    tmp_path, registry, adapter, subscribed
):
    cache = Cache(tmp_path / "cache")
    run_build(recipe(), cache.root, tmp_path / "site", registry, adapter)
    crop = next((cache.root / "examples").rglob("*.png"))  # meta.json is touched when read
    stamp = (crop.stat().st_ino, crop.stat().st_mtime_ns)

    subscribed.on = True
    Means.seen.clear()
    planned = plan_build(recipe(), cache, registry, adapter)
    summary = planned.summary()["dataset"]
    assert summary["cached"] and summary["passes"] == 2
    assert summary["analyses"] == [
        {
            "name": "means",
            "settings": {"scale": 2.0},
            "describe": "means",
            "passes": 2,
            "pass_names": [],
            "layers_cached": [],
            "layers_to_compute": ["conv1"],
            "cached": False,
        }
    ]
    result = run_build(recipe(), cache.root, tmp_path / "site", registry, adapter)
    assert not result.failed and result.computed == 0
    assert (crop.stat().st_ino, crop.stat().st_mtime_ns) == stamp  # examples not written again
    order = [indices for _, p, indices in Means.seen if p == 0]
    assert order == [indices for _, p, indices in Means.seen if p == 1]  # the same samples
    assert sorted(i for batch in order for i in batch) == list(range(12))

    key = planned.dataset.analyses[0].keys["conv1"]
    finding = AnalysisStore(cache.root).get("means", key)
    assert finding.meta == {"labels": [0, 1], "scale": 2.0} and finding.layer == "conv1"
    images = torch.from_numpy(np.stack([prepare(Dataset()[i][0], adapter) for i in range(12)]))
    with torch.no_grad():
        act = forward_layers(adapter, adapter.input.normalize(images), ["conv1"])["conv1"]
    means = act.mean((2, 3)).numpy()
    brute = np.stack([means[label::2].mean(0) for label in (0, 1)]) * 2.0
    np.testing.assert_allclose(finding.arrays["means"], brute, rtol=1e-4, atol=1e-5)
    assert (finding.arrays["above"] == (means > means.mean(0)).sum(0)).all()

    again = plan_build(recipe(), cache, registry, adapter).summary()["dataset"]
    assert again["analyses"][0]["cached"]
    found = maintenance.info(cache.root)
    assert (found["examples"], found["analyses"]) == (1, 1)
    kept = planned.dataset.all_keys() | {k for t in planned.tasks for k in t.keys}
    assert maintenance.prune(cache.root, keep=kept)["analyses"] == 0
    assert maintenance.prune(cache.root, keep=set())["analyses"] == 1
    assert AnalysisStore(cache.root).get("means", key) is None


def test_an_analysis_result_does_not_depend_on_the_batch_size(
    tmp_path, registry, adapter, subscribed
):
    subscribed.on = True
    found = []
    for batch_size in (5, 12):
        cache = Cache(tmp_path / f"cache{batch_size}")
        run_build(
            Recipe(**{**recipe().__dict__, "batch_size": batch_size}),
            cache.root,
            tmp_path / f"site{batch_size}",
            registry,
            adapter,
        )
        finding_dir = next((cache.root / "analyses").rglob("arrays.npz"))
        found.append(np.load(finding_dir)["means"])
    np.testing.assert_allclose(found[0], found[1], rtol=1e-5)
