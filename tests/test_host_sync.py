"""The optimisation loop never waits on the host: after its first step nothing is copied in
from host data and no value is read back, so a GPU's queue never drains mid-batch."""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from atlas.engine import objectives
from atlas.engine.masks import from_array
from atlas.pipeline.worker import render_batch as render
from atlas.recipe import CropSettings, RenderSettings

# the calls that move data between host and device (on CUDA each blocks until the queue drains)
HOST_TRAFFIC = {
    "tensor", "as_tensor", "new_tensor",  # host data copied to the device
    "item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__",
}  # fmt: skip
# torch's optimisers keep their step count on the host unless capturable, and read it there
HOST_SIDE = str(Path(torch.optim.__file__).parent)

BASE = RenderSettings(size=(24, 24), steps=6, lr=0.05, redirect_relu_steps=2)
CASES = {
    "fft, channels": (BASE, lambda: objectives.channel("conv2", [0, 3])),
    "masked, direction, penalties": (
        replace(BASE, regularizers={"tv": 0.1, "l1": 0.05, "blur": 0.1}),
        lambda: (
            objectives.channel("conv2", 1, mask="top")
            + objectives.direction("conv1", np.arange(8.0), mask=from_array(np.eye(24)))
            - 0.5 * objectives.channel("conv1", 2, mask=[0.1, 0.1, 0.6, 0.9])
        ),
    ),
    "maco, crops": (
        replace(BASE, param="maco", transforms=CropSettings(crops=2)),
        lambda: objectives.channel("conv2", [2, 4]),
    ),
    "alpha": (replace(BASE, alpha=True), lambda: objectives.channel("conv2", 5)),
    "cppn": (replace(BASE, param="cppn"), lambda: objectives.channel("conv1", 1)),
    "model_size": (replace(BASE, model_size=(32, 32)), lambda: objectives.channel("fc", 0)),
}


class HostTraffic(TorchFunctionMode):
    """Record which host-traffic calls happen in which optimisation step."""

    def __init__(self):
        super().__init__()
        self.step = 0
        self.calls: list[tuple[int, str]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_TRAFFIC and not sys._getframe(1).f_code.co_filename.startswith(HOST_SIDE):
            self.calls.append((self.step, name))
        return func(*args, **(kwargs or {}))

    def next_step(self, step: int) -> None:
        self.step = step + 1


@pytest.mark.parametrize("case", CASES)
def test_steps_after_the_first_touch_no_host_data(adapter, registry, case):
    settings, objective = CASES[case]
    traffic = HostTraffic()
    with traffic:
        result = render(adapter, objective(), [1, 2], settings, registry, on_step=traffic.next_step)
    assert np.isfinite(result.final).all()
    # the ReLU redirect reads one flag per step on CPU only (its shortcut); skip its steps
    first = max(1, settings.redirect_relu_steps)
    inside = [(step, name) for step, name in traffic.calls if first <= step < settings.steps]
    assert not inside, inside
    assert traffic.calls, "the mode saw nothing: it is not watching the loop"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.parametrize("case", CASES)
def test_cuda_steps_never_synchronise(adapter, registry, case):
    settings, objective = CASES[case]
    settings = replace(settings, steps=8, redirect_relu_steps=4)

    def watch(step: int) -> None:  # from the end of step 0 to the end of the last step
        torch.cuda.set_sync_debug_mode("error" if step < settings.steps - 1 else "default")

    try:
        render(adapter, objective(), [1, 2], settings, registry, device="cuda", on_step=watch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
