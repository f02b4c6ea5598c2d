"""Batches are sized to the memory at hand, so no recipe gets the build killed."""

import torch

from atlas.pipeline import build as pipeline_module
from atlas.pipeline import memory, runner
from atlas.pipeline.memory import bytes_per_picture, fit_batch


def test_a_picture_costs_more_on_a_larger_canvas_and_a_deeper_layer(adapter):
    small = bytes_per_picture(adapter, frozenset({"conv1"}), (16, 16), torch.device("cpu"))
    large = bytes_per_picture(adapter, frozenset({"conv1"}), (64, 64), torch.device("cpu"))
    deeper = bytes_per_picture(adapter, frozenset({"conv2"}), (64, 64), torch.device("cpu"))
    assert large > 4 * small and deeper > large  # 88x88 against 40x40 padded canvases
    assert large >= 3 * 88 * 88 * 4  # at least the padded canvas itself, in floats


def test_fit_batch_caps_to_the_share_of_memory_and_the_workers():
    assert fit_batch(256, per_picture=10**6, available=10**12) == 256
    assert fit_batch(256, per_picture=10**8, available=24 * 10**9) == 40
    assert fit_batch(256, per_picture=10**8, available=24 * 10**9, workers=2) == 20
    assert fit_batch(256, per_picture=10**12, available=10**9) == 1


def test_a_build_caps_its_batches_and_says_so(tmp_path, adapter, registry, monkeypatch, capsys):
    from test_pipeline import build, tiny_recipe

    per = bytes_per_picture(adapter, frozenset({"conv1"}), (32, 32), torch.device("cpu"))
    monkeypatch.setattr(runner, "available_bytes", lambda device: int(per * 3 * 3 / 0.5))
    seen = []
    real = pipeline_module.execute

    def spy(jobs, *args, **kwargs):
        seen.extend(len(job.tasks) for job in jobs)
        return real(jobs, *args, **kwargs)

    monkeypatch.setattr(pipeline_module, "execute", spy)
    recipe = tiny_recipe()
    result = build(tmp_path, registry, adapter, recipe)
    assert not result.failed and result.computed == 8 + 6
    assert max(seen) == 3 and sum(seen) == 8 + 6  # every picture, none in a batch over 3
    err = capsys.readouterr().err
    assert "note: batches of conv1 capped at 3 pictures (batch_size 64)" in err


def test_available_memory_is_read():
    assert memory.available_bytes(torch.device("cpu")) > 10**8
