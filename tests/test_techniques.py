"""Every technique on the tiny CNN: objectives rise, algebra is linear, masks confine,
diversity diversifies, MACO keeps its magnitude, alpha is used, callables compose."""

import json

import numpy as np
import pytest
import torch

from atlas.engine import objectives as obj
from atlas.engine.params import MACO_CONTRAST, MacoImage
from atlas.models.layers import catalogue, forward_layers
from atlas.pipeline.compose import Context, as_objective
from atlas.pipeline.settle import settle
from atlas.pipeline.worker import render_batch as render
from atlas.recipe import RenderSettings

FAST = RenderSettings(size=(32, 32), steps=40, lr=0.1)

# One example call per built-in objective: a new built-in must add one here.
EXAMPLES = {
    "channel": "channel('conv2', 3)",
    "neuron": "neuron('conv2', 1)",
    "layer": "layer('conv1')",
    "direction": "direction('conv2', [1, 0, -1, 0, 1, 0.5], cossim_pow=1)",
    "diversity": "channel('conv2', 3) - 0.5 * diversity('conv1')",
}


@pytest.fixture
def context(adapter):
    found = {layer.name: layer for layer in catalogue(adapter) if layer.supported}
    return Context("test/tiny", adapter.labels, found)


def test_every_built_in_objective_has_an_example(registry):
    builtins = next(p for p in registry.plugins if p.name == "builtins")
    assert sorted(builtins.registered["objectives"]) == sorted(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_objective_rises_and_has_a_plain_spec(name, adapter, registry, context):
    objective = as_objective(EXAMPLES[name], registry, context)
    result = render(adapter, objective, [1, 2], FAST, registry)
    assert result.final.shape == (2,)
    start, end = result.curve[:3].mean(0), result.curve[-3:].mean(0)
    assert (end > start + 1e-3).all(), (name, start, end)
    assert f'"type": "{name}"' in json.dumps(objective.spec)


def _input_gradient(adapter, objective, image):
    image = image.clone().requires_grad_(True)
    acts = forward_layers(adapter, adapter.input.normalize(image), objective.layers)
    objective(acts).sum().backward()
    return image.grad


def test_algebra_is_linear_in_the_gradient(adapter):
    image = torch.rand(2, 3, 32, 32)
    a, b = obj.channel("conv2", 1), obj.neuron("conv1", 4)
    combined = _input_gradient(adapter, 2 * a - b / 4, image)
    separate = 2 * _input_gradient(adapter, a, image) - _input_gradient(adapter, b, image) / 4
    torch.testing.assert_close(combined, separate, rtol=1e-4, atol=1e-6)
    assert combined.abs().sum() > 0


@pytest.mark.parametrize("mask", ["top-left", [0.25, 0.5, 0.75, 1.0], "border"])
def test_outside_its_mask_a_term_has_no_gradient(mask, registry, context):
    made = as_objective(f"channel('conv1', 2, mask={mask!r})", registry, context)
    act = torch.rand(1, 8, 16, 16, requires_grad=True)
    made({"conv1": act}).sum().backward()
    grad = act.grad[0, 2]
    inside = torch.as_tensor(made.mask.at(16, 16)) > 0
    assert (grad[~inside] == 0).all() and (grad[inside] > 0).all()
    assert 0 < inside.sum() < inside.numel()
    assert (act.grad[0, [0, 1, 3]] == 0).all()


def test_an_image_mask_weights_by_brightness(tmp_path, registry, adapter):
    import cv2

    pixels = np.zeros((40, 40), np.uint8)
    pixels[:, 20:] = 255
    cv2.imwrite(str(tmp_path / "right.png"), pixels)
    found = {layer.name: layer for layer in catalogue(adapter) if layer.supported}
    context = Context("test/tiny", {}, found, tmp_path)
    made = as_objective("channel('conv1', 0, mask='right.png')", registry, context)
    act = torch.rand(1, 8, 8, 8)
    torch.testing.assert_close(made({"conv1": act}), act[:, 0, :, 4:].mean((1, 2)))


def _similarity(adapter, images, layer="conv2"):
    x = adapter.input.normalize(torch.from_numpy(images[..., :3]).permute(0, 3, 1, 2))
    return obj.Diversity(layer)(forward_layers(adapter, x, [layer])).mean().item()


def test_diversity_lowers_pairwise_similarity(adapter, registry):
    plain = obj.channel("conv2", 2) - 0.0 * obj.diversity("conv2")
    pushed = obj.channel("conv2", 2) - 3.0 * obj.diversity("conv2")
    seeds = [1, 2, 3, 4]
    alike = render(adapter, plain, seeds, FAST, registry)
    apart = render(adapter, pushed, seeds, FAST, registry)
    assert _similarity(adapter, apart.images) < _similarity(adapter, alike.images) - 0.02


def test_maco_learns_the_phase_and_keeps_the_magnitude(adapter, registry):
    generators = [torch.Generator().manual_seed(s) for s in (1, 2)]
    param = MacoImage((2, 3, 32, 32), generators)
    before = param.phase.detach().clone()
    optimizer = torch.optim.NAdam(param.parameters(), lr=1.0)
    for _ in range(5):
        loss = -param()[:, 0].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert not torch.allclose(before, param.phase)
    spectrum = torch.fft.rfft2(param.raw().detach()).abs()[..., 1:-1]
    ratio = spectrum / param.magnitude[..., 1:-1]
    ratio = ratio / ratio.flatten(1).median(1).values.view(-1, 1, 1, 1)
    torch.testing.assert_close(ratio, torch.ones_like(ratio), rtol=1e-3, atol=1e-3)


def test_maco_renders_with_its_own_defaults(adapter, registry):
    settings = RenderSettings(size=(32, 32), steps=30, param="maco")
    result = render(adapter, obj.channel("conv2", [0, 3]), [1, 2], settings, registry)
    assert result.images.shape == (2, 32, 32, 3)
    assert (result.curve[-3:].mean(0) > result.curve[:3].mean(0)).all()


def test_maco_pictures_have_contrast_and_the_gain_is_in_their_key(adapter, registry):
    """MACO's standardised image went into the sigmoid at gain 1, so its pictures spanned
    only sigmoid(±1): grey. The gain (a keyed option) is in every MACO key."""
    spreads = {}
    for contrast in (1.0, 2.0):
        options = {"contrast": contrast}
        settings = RenderSettings(size=(32, 32), steps=20, param="maco", param_options=options)
        images = render(adapter, obj.channel("conv2", [0, 3]), [1, 2], settings, registry).images
        spreads[contrast] = float(np.percentile(images, 95) - np.percentile(images, 5))
    assert spreads[2.0] > 1.4 * spreads[1.0]
    planned = settle(RenderSettings(param="maco"), adapter, registry, "")
    assert planned.as_dict()["param_options"] == {"contrast": MACO_CONTRAST}
    assert settle(RenderSettings(), adapter, registry, "").as_dict()["param_options"] == {}


def _roughness(images):
    return np.abs(np.diff(images, axis=1)).mean() + np.abs(np.diff(images, axis=2)).mean()


def test_cppn_pictures_rise_and_are_smooth_patterns(adapter, registry):
    settings = RenderSettings(size=(32, 32), steps=40, param="cppn")
    cppn = render(adapter, obj.channel("conv2", [1]), [1], settings, registry)
    fft = render(adapter, obj.channel("conv2", [1]), [1], FAST, registry)
    assert cppn.curve[-3:].mean() > cppn.curve[:3].mean()
    assert _roughness(cppn.images) < 0.5 * _roughness(fft.images)


def test_alpha_pictures_have_a_real_alpha_channel(adapter, registry):
    settings = RenderSettings(size=(32, 32), steps=60, lr=0.1, alpha=True)
    result = render(adapter, obj.channel("relu2", [2, 5]), [1, 2], settings, registry)
    assert result.images.shape == (2, 32, 32, 4)
    alpha = result.images[..., 3]
    assert alpha.std() > 0.2 and alpha.min() < 0.1 and alpha.max() > 0.9
    # (1 - mean alpha) rewards transparency where the unit needs no content (from 0.5)
    assert alpha.mean() < 0.4


def test_a_custom_callable_composes_with_a_built_in(adapter, registry, context):
    def redness(acts):
        return acts["input"][:, 0].mean((1, 2)) - acts["input"][:, 1:].mean((1, 2, 3))

    custom = obj.objective(redness, layers=["input"])
    assert custom.spec is None  # no name: never cached
    combined = as_objective(obj.channel("conv1", 0) + 2.0 * custom, registry, context)
    image = torch.rand(2, 3, 32, 32)
    acts = forward_layers(adapter, adapter.input.normalize(image), ["conv1"]) | {"input": image}
    torch.testing.assert_close(combined(acts), acts["conv1"][:, 0].mean((1, 2)) + 2 * redness(acts))
    result = render(adapter, obj.objective(redness, ["input"], name="red"), [1], FAST, registry)
    assert result.images[0, ..., 0].mean() > result.images[0, ..., 1:].mean() + 0.2


def test_stacked_batches_score_each_image_with_its_own_objective(adapter):
    parts = [
        obj.channel("conv2", 1),
        -obj.channel("conv2", 4),
        obj.channel("conv2", 1, mask="left"),
    ]
    stacked = obj.stack(parts)
    assert isinstance(obj.stack(parts[:1] * 3), obj.Channel)  # equal kinds merge into one gather
    image = torch.rand(3, 3, 32, 32)
    acts = forward_layers(adapter, adapter.input.normalize(image), ["conv2"])
    expected = torch.stack([p({"conv2": acts["conv2"][i : i + 1]})[0] for i, p in enumerate(parts)])
    torch.testing.assert_close(stacked(acts), expected)


@pytest.mark.e2e
def test_a_measured_spectrum_drives_maco(tmp_path, adapter, registry):
    import cv2
    from helpers import atlas

    from atlas.engine.params import load_magnitude

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):  # vertical stripes: all their energy lies along the x frequencies
        row = (rng.random(48) > 0.5).astype(np.uint8) * 255
        cv2.imwrite(str(folder / f"{i}.png"), np.repeat(np.tile(row, (48, 1))[..., None], 3, -1))
    (folder / "broken.png").write_bytes(b"not an image")
    result = atlas("spectrum", str(folder), "--out", str(tmp_path / "s.npy"), "--size", "32")
    assert result.returncode == 0, result.stderr
    magnitude = load_magnitude(str(tmp_path / "s.npy"), 3, 32, 32)
    assert magnitude.shape == (3, 32, 17)
    assert magnitude[0, 0, 1:].sum() > 20 * magnitude[0, 1:, 0].sum()
    settings = RenderSettings(
        size=(32, 32), steps=3, param="maco", param_options={"spectrum": str(tmp_path / "s.npy")}
    )
    picture = render(adapter, obj.channel("conv1", [0]), [1], settings, registry).images[0]
    assert picture.std(0).mean() < 0.02 < picture.std(1).mean()  # the same in every row
