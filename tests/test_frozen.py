"""The copy the optimiser runs does less work a step and computes the same function."""

import numpy as np
import torch
from torch import nn

from atlas.engine import objectives
from atlas.models import frozen
from atlas.models.adapter import InputSpec, ModelAdapter
from atlas.models.layers import forward_layers
from atlas.pipeline.worker import render_batch as render
from atlas.recipe import RenderSettings


class NormNet(nn.Module):
    """conv-bn-relu twice, and a conv whose raw output is also added back (cannot fold)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = (
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
        )
        self.conv2, self.bn2, self.relu2 = (
            nn.Conv2d(8, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
        )
        self.conv3, self.bn3 = nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        y = self.conv3(x)
        return self.bn3(y) + y


def norm_adapter() -> ModelAdapter:
    torch.manual_seed(0)
    net = NormNet()
    for bn in (net.bn1, net.bn2, net.bn3):  # statistics that are not the identity
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    spec = InputSpec(size=(24, 24), mean=(0.5,) * 3, std=(0.25,) * 3)
    return ModelAdapter(net, "test/norm", "norm-seed-0", spec)


def test_batchnorms_after_convolutions_fold_and_others_do_not():
    adapter = norm_adapter()
    assert frozen.foldable(adapter) == (("conv1", "bn1"), ("conv2", "bn2"))  # not conv3


def test_the_folded_copy_gives_the_same_activations_under_the_same_names():
    adapter = norm_adapter()
    copy = frozen.run_copy(adapter, ["relu2"], torch.float32, torch.device("cpu"))
    assert copy is not adapter and isinstance(copy.module.bn1, nn.Identity)
    assert isinstance(adapter.module.bn1, nn.BatchNorm2d)  # the user's module is untouched
    x = adapter.input.normalize(torch.rand(2, 3, 24, 24))
    names = ["bn1", "relu1", "bn2", "relu2", "output"]
    before, after = forward_layers(adapter, x, names), forward_layers(copy, x, names)
    for name in names:
        torch.testing.assert_close(after[name], before[name], rtol=1e-4, atol=1e-5)


def test_a_convolution_the_objective_reads_is_not_folded():
    adapter = norm_adapter()
    copy = frozen.run_copy(adapter, ["conv2"], torch.float32, torch.device("cpu"))
    assert isinstance(copy.module.bn2, nn.BatchNorm2d) and isinstance(copy.module.bn1, nn.Identity)
    x = adapter.input.normalize(torch.rand(2, 3, 24, 24))
    torch.testing.assert_close(
        forward_layers(copy, x, ["conv2"])["conv2"], forward_layers(adapter, x, ["conv2"])["conv2"]
    )


def test_pictures_are_the_same_with_and_without_folding(registry, monkeypatch):
    settings = RenderSettings(size=(24, 24), steps=30, lr=0.1)
    objective = objectives.channel("relu2", [0, 3])
    folded = render(norm_adapter(), objective, [1, 2], settings, registry, precision="fp32")
    monkeypatch.setattr("atlas.engine.render.run_copy", lambda adapter, *args: adapter)
    plain = render(norm_adapter(), objective, [1, 2], settings, registry, precision="fp32")
    assert np.abs(folded.images - plain.images).max() < 1e-3
    np.testing.assert_allclose(folded.final, plain.final, rtol=1e-3)


def test_bf16_reaches_the_activation_of_fp32(registry):
    settings = RenderSettings(size=(24, 24), steps=60, lr=0.1)
    objective = objectives.channel("relu2", range(8))
    fp32 = render(norm_adapter(), objective, range(8), settings, registry, precision="fp32")
    bf16 = render(norm_adapter(), objective, range(8), settings, registry, precision="bf16")
    assert fp32.final.mean() > 2 * fp32.curve[0].mean()  # the optimisation did its work
    assert abs(bf16.final.mean() - fp32.final.mean()) < 0.03 * fp32.final.mean()
    assert bf16.final.dtype == np.float32


def test_new_weights_in_the_same_module_get_a_new_copy():
    adapter = norm_adapter()
    before = frozen.run_copy(adapter, ["relu2"], torch.float32, torch.device("cpu"))
    assert frozen.run_copy(adapter, ["relu2"], torch.float32, torch.device("cpu")) is before
    with torch.no_grad():  # as a notebook user training between two visualizations does
        adapter.module.conv2.weight.mul_(2)
    after = frozen.run_copy(adapter, ["relu2"], torch.float32, torch.device("cpu"))
    x = adapter.input.normalize(torch.rand(2, 3, 24, 24))
    torch.testing.assert_close(
        forward_layers(after, x, ["relu2"])["relu2"],
        forward_layers(adapter, x, ["relu2"])["relu2"],
        rtol=1e-4,
        atol=1e-5,
    )
