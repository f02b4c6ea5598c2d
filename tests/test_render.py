import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch

from atlas.engine import objectives
from atlas.engine.transforms import TransformSchedule
from atlas.models.adapter import InputSpec, ModelAdapter
from atlas.models.layers import forward_layers
from atlas.pipeline.worker import render_batch as render
from atlas.recipe import NO_TRANSFORMS, RenderSettings, TransformSettings

FAST = RenderSettings(size=(32, 32), steps=40, lr=0.2)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_objective_rises_for_every_image_of_a_batch(adapter, registry, device):
    channels = [0, 3, 5]
    objective = objectives.channel("conv2", channels)
    result = render(adapter, objective, [1, 2, 3], FAST, registry, device=device)
    assert result.images.shape == (3, 32, 32, 3)
    assert result.images.min() >= 0 and result.images.max() <= 1
    start, end = result.curve[:5].mean(0), result.curve[-5:].mean(0)
    assert (end > start + 0.02).all(), (start, end)
    assert (result.final > start + 0.05).all(), (start, result.final)


class ColourNet(torch.nn.Module):
    """Six 1x1 channels that see one colour each: +R, +G, +B, -R, -G, -B."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.cat([torch.eye(3), -torch.eye(3)])[..., None, None])

    def forward(self, x):
        return self.conv(x)


def test_each_image_maximises_its_own_channel(registry):
    spec = InputSpec(size=(16, 16), mean=(0.5,) * 3, std=(0.25,) * 3)
    colours = ModelAdapter(ColourNet(), "test/colour", "colour-net", spec)
    settings = RenderSettings(size=(16, 16), steps=40, lr=0.2)
    result = render(colours, objectives.channel("conv", range(6)), range(1, 7), settings, registry)
    x = colours.input.normalize(torch.from_numpy(result.images).permute(0, 3, 1, 2))
    act = forward_layers(colours, x, ["conv"])["conv"].mean((2, 3))  # image x channel
    others = act.clone().fill_diagonal_(-float("inf")).max(0).values
    margins = act.diagonal() - others
    # each channel's own picture beats every other picture on that channel, clearly
    # (about 0.3 here; 0.02 at most when every image maximises channel 0)
    assert (margins > 0.15).all(), margins


def test_same_seed_same_picture_whatever_the_batch(adapter, registry):
    alone = render(adapter, objectives.channel("conv1", [2]), [7], FAST, registry)
    batched = render(adapter, objectives.channel("conv1", [5, 2]), [9, 7], FAST, registry)
    # equal up to float rounding of batched kernels, which Adam can amplify slightly
    diff = np.abs(alone.images[0] - batched.images[1])
    assert diff.mean() < 1e-3 and diff.max() < 0.05


def _roughness(images):
    return np.abs(np.diff(images, axis=1)).mean() + np.abs(np.diff(images, axis=2)).mean()


@pytest.mark.parametrize("param", ["fft", "pixel"])
def test_a_regularizer_lowers_what_it_penalises(param, adapter, registry):
    def picture(tv):
        settings = RenderSettings(size=(24, 40), steps=30, lr=0.1, param=param, regularizers=tv)
        return render(adapter, objectives.channel("conv1", [0]), [1], settings, registry).images

    free, smooth = picture({}), picture({"tv": 1.0})
    assert free.shape == (1, 24, 40, 3)
    assert _roughness(smooth) < 0.8 * _roughness(free)


def test_pixel_and_fft_parameterizations_differ(adapter, registry):
    def picture(param):
        settings = RenderSettings(size=(24, 40), steps=30, lr=0.1, param=param)
        return render(adapter, objectives.channel("conv1", [0]), [1], settings, registry).images

    assert np.abs(picture("pixel") - picture("fft")).mean() > 0.05


def test_transforms_are_seeded_and_pad_with_grey():
    gens = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    schedule = TransformSchedule(TransformSettings(), 4, gens)
    again = TransformSchedule(
        TransformSettings(), 4, [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    )
    image = torch.rand(2, 3, 32, 32)
    out = schedule(image, 0)
    assert out.shape == (2, 3, 56, 56)
    torch.testing.assert_close(out, again(image, 0))
    assert torch.allclose(out[:, :, 0, 0], torch.tensor(0.5))


def test_transform_draws_cover_the_configured_ranges():
    settings = TransformSettings(jitter=5, scales=(0.8, 1.0, 1.25), degrees=20.0, jitter2=2)
    schedule = TransformSchedule(settings, 3000, [torch.Generator().manual_seed(3)])
    assert set(schedule.jitter1.unique().tolist()) == set(range(-5, 6))
    assert set(schedule.jitter2.unique().tolist()) == set(range(-2, 3))
    assert schedule.scale.unique().tolist() == pytest.approx([0.8, 1.0, 1.25])
    degrees = torch.rad2deg(schedule.angle)
    assert degrees.abs().max() <= 20 and degrees.min() < -19 and degrees.max() > 19
    assert degrees.std() > 10  # spread over the range, not stuck near 0


def test_no_transforms_is_the_identity():
    schedule = TransformSchedule(NO_TRANSFORMS, 1, [torch.Generator().manual_seed(0)])
    image = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(schedule(image, 0), image, atol=1e-5, rtol=0)


def test_relu_redirect_wakes_a_dead_channel(adapter, registry):
    with torch.no_grad():
        adapter.module.conv1.bias[0] = -0.5  # relu1 channel 0 is off for a grey image
    objective = objectives.channel("relu1", [0])
    dead = render(adapter, objective, [1], replace(FAST, redirect_relu_steps=0), registry)
    woken = render(adapter, objective, [1], replace(FAST, redirect_relu_steps=40), registry)
    assert dead.final[0] == 0 and woken.final[0] > 0
    assert all(
        type(m).forward is m.forward.__func__
        for m in adapter.module.modules()
        if isinstance(m, torch.nn.ReLU)
    ), "ReLUs were not restored"


def test_model_parameters_get_no_gradient(adapter, registry):
    render(adapter, objectives.channel("conv2", [0]), [1], replace(FAST, steps=2), registry)
    assert all(p.grad is None and not p.requires_grad for p in adapter.module.parameters())


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_relu_redirect_gradient_follows_lucids_rule(layout):
    from atlas.engine.relu import redirected_relu

    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5)
    x[1] = -x[1].abs()  # image 1: every unit off, so no plain ReLU gradient reaches it
    x = x.contiguous(memory_format=layout)
    grad = torch.randn(4, 3, 5, 5).contiguous(memory_format=layout)
    x.requires_grad_(True)
    torch.testing.assert_close(redirected_relu(x), torch.relu(x))
    redirected_relu(x).backward(grad)
    off = x.detach() < 0
    expected = grad * ~off  # alive images: the plain ReLU gradient
    expected[1] = torch.where(off[1] & (grad[1] > 0), 0.0, grad[1])  # lucid's redirect
    torch.testing.assert_close(x.grad, expected)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_gelu_redirect_gradient_raises_an_image_where_every_unit_is_off(approximate, layout):
    from atlas.engine.relu import redirected_gelu

    torch.manual_seed(0)
    x = torch.randn(3, 4, 6, 5) * 2
    x[1] = -x[1].abs() - 0.2  # image 1: every unit below 0, where GELU's gradient is small
    x = x.contiguous(memory_format=layout).requires_grad_(True)
    grad = torch.randn(3, 4, 6, 5).contiguous(memory_format=layout)
    gelu = torch.nn.functional.gelu(x, approximate=approximate)
    torch.testing.assert_close(redirected_gelu(x, approximate), gelu)
    redirected_gelu(x, approximate).backward(grad)
    expected = torch.ops.aten.gelu_backward(grad, x.detach(), approximate=approximate)
    # image 1: a unit being raised (grad < 0 in loss terms) gets the whole gradient, one
    # being lowered GELU's own (a picture minimising a unit is not held back)
    expected[1] = torch.where(grad[1] < 0, grad[1], expected[1])
    torch.testing.assert_close(x.grad, expected)


def test_the_redirect_patches_relus_and_gelus_and_restores_them():
    from atlas.engine.relu import redirect_activations

    net = torch.nn.Sequential(
        torch.nn.ReLU(), torch.nn.GELU(), torch.nn.GELU(approximate="tanh"), torch.nn.Tanh()
    )
    x = torch.randn(2, 8)
    with redirect_activations(net) as count:
        assert count == 3
        gelu = torch.nn.functional.gelu
        torch.testing.assert_close(net(x), torch.tanh(gelu(gelu(x.relu()), approximate="tanh")))
        assert not torch.equal(net[1](x), net[2](x))  # each GELU keeps its own approximation
        with redirect_activations(net) as inner:  # nested: already patched, left alone
            assert inner == 0
        assert "forward" in net[1].__dict__
    assert not any("forward" in m.__dict__ for m in net)
    with pytest.raises(RuntimeError), redirect_activations(net):
        raise RuntimeError("a failing step")
    assert not any("forward" in m.__dict__ for m in net)


def test_gelu_redirect_wakes_a_unit_that_plain_gelu_drives_to_zero(adapter, registry):
    adapter.module.relu1 = torch.nn.GELU(approximate="tanh")  # a GELU net, as ViTs are
    with torch.no_grad():  # channel 0 starts below -0.75, where GELU falls towards 0 as x falls
        adapter.module.conv1.weight[0] *= 4
        adapter.module.conv1.bias[0] = -3
    objective = objectives.channel("relu1", [0])
    fast = RenderSettings(size=(32, 32), steps=40, lr=0.2)
    plain = render(adapter, objective, [1], replace(fast, redirect_relu_steps=0), registry)
    woken = render(adapter, objective, [1], replace(fast, redirect_relu_steps=16), registry)
    assert abs(plain.final[0]) < 0.001 and woken.final[0] > 0.05, (plain.final, woken.final)


def test_only_keys_of_models_with_gelus_say_that_gelus_are_redirected(adapter):
    from atlas.pipeline.plan import task_spec

    objective = objectives.channel("relu1", [0])
    assert "redirect" not in task_spec(adapter, objective, FAST, 0)  # ReLU nets keep keys
    adapter.module.relu1 = torch.nn.GELU()
    assert task_spec(adapter, objective, FAST, 0)["redirect"] == "relu+gelu"
    off = replace(FAST, redirect_relu_steps=0)
    assert "redirect" not in task_spec(adapter, objective, off, 0)


def test_cosine_schedule_takes_the_learning_rate_from_lr_down_to_zero():
    from atlas.engine.render import _lr_schedule
    from atlas.recipe import render_settings

    settings = render_settings({"lr_schedule": "cosine", "steps": 10, "lr": 0.1}, "r")
    assert settings.as_dict()["lr_schedule"] == "cosine"
    assert "lr_schedule" not in render_settings({}, "r").as_dict()  # old cache keys stay valid
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=settings.lr)
    scheduler, rates = _lr_schedule(optimizer, settings), []
    for _ in range(settings.steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.1) and rates[-1] < 0.01
    assert all(a > b for a, b in itertools.pairwise(rates))
    constant = render_settings({"steps": 10, "lr": 0.1}, "r")
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = _lr_schedule(optimizer, constant)  # None: nothing changes the rate
    for _ in range(10):
        optimizer.step()
        if scheduler:
            scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


def test_an_unknown_lr_schedule_names_the_key():
    from atlas.errors import RecipeError
    from atlas.recipe import render_settings

    with pytest.raises(RecipeError, match=r"r\.toml: key 'render\.lr_schedule' must be one of"):
        render_settings({"lr_schedule": "linear"}, "r.toml")
