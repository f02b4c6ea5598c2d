"""The dataset pass on the tiny CNN: exact running statistics, crops, bounded memory."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from atlas.datasets.examples import crop_box, make_crops, prepare, receptive_field, run_pass
from atlas.models.layers import forward_layers


class RandomImages:
    """A small in-memory data set of random images (a few unreadable on request)."""

    def __init__(self, n: int, size: int = 32, broken=()):
        self.n, self.size, self.broken = n, size, set(broken)

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if index in self.broken:
            return None, None
        rng = np.random.default_rng(index)
        return rng.integers(0, 256, (self.size, self.size, 3), dtype=np.uint8), None

    def identity(self):
        return {"random": self.n}


def brute_force(adapter, dataset, layer):
    images = np.stack([prepare(dataset[i][0], adapter) for i in range(len(dataset))])
    with torch.no_grad():
        act = forward_layers(adapter, adapter.input.normalize(torch.from_numpy(images)), [layer])
    return act[layer].flatten(2).mean(-1).numpy()  # (N, C)


def test_running_top_k_and_statistics_equal_brute_force(adapter):
    dataset = RandomImages(150)
    found, skipped = run_pass(adapter, dataset, ["conv1", "conv2"], 150, 7, batch_size=16)
    assert skipped == []
    for layer in ("conv1", "conv2"):
        values = brute_force(adapter, dataset, layer)
        result = found[layer]
        order = np.argsort(-values, axis=0, kind="stable")[:7].T
        np.testing.assert_array_equal(result.indices, order)
        np.testing.assert_allclose(result.values, np.take_along_axis(values.T, order, 1), rtol=1e-5)
        np.testing.assert_allclose(result.max, values.max(0), rtol=1e-5)
        np.testing.assert_allclose(result.mean, values.mean(0), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(result.p99, np.percentile(values, 99, axis=0), rtol=1e-4)
        assert result.samples == 150


def test_batching_does_not_change_the_result(adapter):
    dataset = RandomImages(60)
    one = run_pass(adapter, dataset, ["conv2"], 60, 5, batch_size=60)[0]["conv2"]
    many = run_pass(adapter, dataset, ["conv2"], 60, 5, batch_size=7)[0]["conv2"]
    np.testing.assert_array_equal(one.indices, many.indices)
    np.testing.assert_array_equal(one.positions, many.positions)


def test_receptive_fields_are_measured(adapter):
    assert receptive_field(adapter, "conv1") == (3, 3)
    assert receptive_field(adapter, "conv2") == (5, 5)
    assert receptive_field(adapter, "output") == (32, 32)


def test_each_crop_contains_its_units_spatial_maximum(adapter):
    dataset = RandomImages(40)
    found = run_pass(adapter, dataset, ["conv2"], 40, 3, batch_size=8)[0]["conv2"]
    crops, field = make_crops(adapter, dataset, "conv2", found)
    for (c, rank), crop in crops.items():
        index = found.indices[c, rank]
        image = torch.from_numpy(prepare(dataset[index][0], adapter))[None]
        act = forward_layers(adapter, adapter.input.normalize(image), ["conv2"])["conv2"][0, c]
        row, col = divmod(int(act.argmax()), act.shape[-1])
        assert [row, col] == found.positions[c, rank].tolist()
        top, left, h, w = crop_box((row, col), found.grid, field, (32, 32))
        assert top <= row < top + h and left <= col < left + w  # 32 px, 32 cells: same grid
        assert crop.shape == (5, 5, 3)
        pixels = image[0].numpy().transpose(1, 2, 0)[top : top + h, left : left + w]
        np.testing.assert_array_equal(crop, pixels)


def test_unreadable_images_are_skipped_and_counted(adapter):
    dataset = RandomImages(30, broken={3, 11})
    found, skipped = run_pass(adapter, dataset, ["conv1"], 30, 3, batch_size=8)
    assert sorted(skipped) == [3, 11] and found["conv1"].samples == 28
    assert not {3, 11} & set(found["conv1"].indices.ravel().tolist())


PEAK = """
import resource, sys
sys.path.insert(0, {tests!r})
import numpy as np
from conftest import tiny_adapter
from test_examples import RandomImages
from atlas.datasets.examples import run_pass
adapter = tiny_adapter(size=64)
n = int(sys.argv[1])
run_pass(adapter, RandomImages(n, size=64), ["conv1", "conv2"], n, 9, batch_size=32)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_kb(samples: int) -> int:
    code = PEAK.format(tests=str(Path(__file__).parent))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(samples)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.mark.e2e
def test_memory_does_not_grow_with_the_number_of_samples():
    small, large = _peak_kb(200), _peak_kb(2000)
    # keeping the activations would add 2000 x (8 + 6) x 64 x 64 x 4 bytes = 460 MB
    assert large - small < 30_000, (small, large)
