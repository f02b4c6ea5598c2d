"""Vision transformers' token layers as patch grids: a channel is the mean over the patch
tokens, neurons and masks address patches, a layer without a known grid refuses positions,
and the grid comes from the adapter (timm, torchvision, a plugin)."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest
import torch
from helpers import MAPPED, recipe_toml
from torch import nn

from atlas.datasets.examples import OUTLINE, make_crops
from atlas.engine import objectives as obj
from atlas.engine.transforms import AugmentSchedule
from atlas.errors import RecipeError
from atlas.models.adapter import InputSpec, ModelAdapter
from atlas.models.layers import Probe, catalogue
from atlas.models.tokens import TokenGrid
from atlas.pipeline.build import plan_build
from atlas.pipeline.compose import Context, compile_expression
from atlas.plugin import ModelSource, hookimpl
from atlas.recipe import AugmentSettings, parse_recipe
from atlas.recipe.expressions import parse_expression
from atlas.registry import load_registry
from atlas.store.cache import Cache
from atlas.store.findings import LayerExamples


class Attend(nn.Module):
    """Every token sees every other (the footprint attention gives a token)."""

    def forward(self, tokens):
        return tokens + tokens.mean(1, keepdim=True)


class Flatten(nn.Module):
    """A (B, D, h, w) map as (B, h·w, D) patch tokens, as timm's patch_embed returns them."""

    def forward(self, x):
        return x.flatten(2).transpose(1, 2)


class Patches(nn.Module):
    """2 x 3 patch tokens of an 8 x 12 image, then a class token before them, a per-token
    layer, then a layer that mixes all tokens."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 4, 4, stride=4)
        self.flat = Flatten()
        self.cls = nn.Parameter(torch.zeros(1, 1, 4))
        self.mix = nn.Linear(4, 4)
        self.attend = Attend()

    def forward(self, x):
        patches = self.flat(self.embed(x))  # (B, 6, 4)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), patches], 1)
        return self.attend(self.mix(tokens))


GRID = TokenGrid(1, (2, 3))


def patches_adapter(tokens: TokenGrid | None = GRID) -> ModelAdapter:
    torch.manual_seed(0)
    size = InputSpec(channels=3, size=(8, 12), mean=(0.5,) * 3, std=(0.25,) * 3)
    return ModelAdapter(Patches(), "test/patches", "patches-0", size, tokens=tokens)


def raw_mix(adapter: ModelAdapter, x: torch.Tensor) -> torch.Tensor:
    """Return the mix layer's raw (B, 7, 4) tokens."""
    module = adapter.module
    with torch.no_grad():
        patches = module.flat(module.embed(x))
        return module.mix(torch.cat([module.cls.expand(len(x), -1, -1), patches], 1))


def mix_of(adapter: ModelAdapter, x: torch.Tensor) -> torch.Tensor:
    with Probe(adapter, ["mix"]) as probe, torch.no_grad():
        return probe(x)["mix"]


def test_a_token_channel_is_the_mean_over_patch_tokens_only():
    adapter = patches_adapter()
    x = torch.rand(2, 3, 8, 12)
    grid = mix_of(adapter, x)
    assert grid.shape == (2, 4, 2, 3)
    tokens = raw_mix(adapter, x)
    torch.testing.assert_close(grid.flatten(2).transpose(1, 2), tokens[:, 1:])
    channel = obj.channel("mix", 2)
    before = channel({"mix": grid})
    adapter.module.cls.data.fill_(5.0)  # only the class token changes
    torch.testing.assert_close(channel({"mix": mix_of(adapter, x)}), before)
    everything = patches_adapter(tokens=None)  # no grid: the mean over all 7 tokens
    everything.module.cls.data.fill_(5.0)
    assert not torch.allclose(channel({"mix": mix_of(everything, x)}), before)


def test_a_neuron_reads_its_patch_token_and_a_mask_its_patches():
    adapter = patches_adapter()
    x = torch.rand(1, 3, 8, 12)
    tokens = raw_mix(adapter, x)
    grid = mix_of(adapter, x)
    value = obj.neuron("mix", 1, x=2, y=1)({"mix": grid})
    torch.testing.assert_close(value[0], tokens[0, 1 + 1 * 3 + 2, 1])  # row 1, column 2
    left = obj.channel("mix", 1, mask="left")
    weights = []
    for column in range(3):  # the mask's weight of each column of patches
        one = torch.zeros(1, 4, 2, 3)
        one[0, 1, :, column] = 1.0
        weights.append(float(left({"mix": one})[0]))
    assert weights[0] > 0 and weights[2] == 0 and weights[0] >= weights[1]


def test_atlas_layers_describes_the_token_grid():
    (mix,) = [layer for layer in catalogue(patches_adapter()) if layer.name == "mix"]
    assert mix.shape == (4, 2, 3) and mix.tokens == "7 tokens = 1 + 2×3"
    (flat,) = [layer for layer in catalogue(patches_adapter()) if layer.name == "flat"]
    assert flat.shape == (4, 2, 3) and flat.tokens.startswith("6 tokens = 2×3")


def test_patch_tokens_before_the_prefix_are_the_same_grid():
    """timm's patch_embed: the patches alone, before the class token is added."""
    adapter = patches_adapter()
    x = torch.rand(1, 3, 8, 12)
    with Probe(adapter, ["flat"]) as probe, torch.no_grad():
        seen = probe(x)["flat"]
    with torch.no_grad():
        embedded = adapter.module.embed(x)
    torch.testing.assert_close(seen, embedded)  # patch (x, y) is the conv's (x, y)
    value = obj.neuron("flat", 3, x=1, y=1)({"flat": seen})
    torch.testing.assert_close(value[0], embedded[0, 3, 1, 1])
    (gridless,) = [layer for layer in catalogue(patches_adapter(None)) if layer.name == "mix"]
    assert gridless.shape == (7, 4) and gridless.gridless
    assert "patch grid is unknown" in gridless.meaning


class Grey:
    """One mid-grey image."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int):
        return np.full((8, 12, 3), 0.5, np.float32), None


def test_an_example_of_a_token_layer_is_its_field_with_the_best_patch_outlined():
    adapter = patches_adapter()
    found = LayerExamples(
        np.ones((1, 1), np.float32), np.zeros((1, 1), np.int64), np.array([[[1, 2]]]),
        np.ones(1), np.ones(1), np.ones(1), 1, (2, 3),
    )  # fmt: skip
    crops, field = make_crops(adapter, Grey(), "attend", found)
    crop = crops[(0, 0)]
    assert field == (8, 12) and crop.shape == (8, 12, 3)  # attention: the whole image
    np.testing.assert_allclose(crop[4, 8:12], [OUTLINE] * 4)  # row 1, column 2: pixels 4-7, 8-11
    np.testing.assert_allclose(crop[7, 8:12], [OUTLINE] * 4)
    np.testing.assert_allclose(crop[5:7, 9:11], 0.5)  # inside the patch: the image
    np.testing.assert_allclose(crop[:4], 0.5)  # elsewhere too
    crops, field = make_crops(adapter, Grey(), "mix", found)  # one token sees its patch
    assert field == (4, 4) and crops[(0, 0)].shape == (4, 4, 3)
    np.testing.assert_allclose(crops[(0, 0)], 0.5)  # the crop is the patch: no outline


def context_of(adapter: ModelAdapter) -> Context:
    found = catalogue(adapter)
    return Context(adapter.source, {}, {x.name: x for x in found if x.supported}, None)


@pytest.mark.parametrize("text", ["neuron('mix', 1)", "channel('mix', 1, mask='left')"])
def test_positions_on_a_token_layer_without_a_grid_are_refused(text, registry):
    expression = parse_expression(text, "r.toml")
    with pytest.raises(RecipeError, match="token layer whose patch grid is unknown"):
        compile_expression(expression, registry, context_of(patches_adapter(None)), "r.toml")
    made = compile_expression(expression, registry, context_of(patches_adapter()), "r.toml")
    assert made.layers == {"mix"}


class PatchesPlugin:
    """A plugin model: the token grid comes from its adapter (or is unknown)."""

    @hookimpl
    def feature_atlas_register_models(self, register):
        def load(name, weights=None, **options):
            return patches_adapter(TokenGrid(1, (2, 3)) if name == "grid" else None)

        register("patches", ModelSource(load=load, names=lambda: ["grid", "none"]))


def test_a_plugin_gives_the_grid_and_a_neuron_unit_needs_one(tmp_path):
    registry = load_registry(extra=[("patches", PatchesPlugin())])
    assert registry.load_model("patches/grid").tokens == TokenGrid(1, (2, 3))
    assert registry.load_model("patches/none").tokens is None
    data = {"layers": ["mix"], "model": {"source": "patches/none"}}
    data["render"] = {"objective": "neuron", "size": 16}
    with pytest.raises(RecipeError, match=r"render\.objective 'neuron'.*patch grid is unknown"):
        plan_build(parse_recipe(data, "r.toml"), Cache(tmp_path), registry)
    data["model"]["source"] = "patches/grid"
    plan = plan_build(parse_recipe(data, "r.toml"), Cache(tmp_path), registry)
    assert plan.units[0].main.spec["tokens"] == "patches"


@pytest.mark.parametrize(
    ("source", "prefix", "grid"),
    [
        ("timm/vit_tiny_patch16_224", 1, (14, 14)),
        ("timm/deit_tiny_distilled_patch16_224", 2, (14, 14)),  # class and distillation
        ("timm/vit_little_patch16_reg4_gap_256", 4, (16, 16)),  # 4 registers, no class token
        ("torchvision/vit_b_16", 1, (14, 14)),
    ],
)
def test_the_grid_comes_from_timm_and_torchvision(source, prefix, grid):
    adapter = load_registry().load_model(source)
    assert adapter.tokens == TokenGrid(prefix, grid)
    names = "blocks.0.mlp.act" if source.startswith("timm") else "encoder.layers.encoder_layer_0"
    (layer,) = [x for x in catalogue(adapter) if x.name == names]
    assert layer.shape[1:] == grid and layer.tokens.startswith(f"{prefix + grid[0] * grid[1]} ")


def test_keys_of_feature_map_layers_are_unchanged(tmp_path):
    """The demo's cache keys from before token grids existed still serve it."""
    recipe = parse_recipe(tomllib.loads(recipe_toml(MAPPED)), "r")
    plan = plan_build(recipe, Cache(tmp_path), load_registry())
    assert plan.units[1].key == "ed8687f2cc351888338f9918ffe010929372479eee225d59e4347b820559c954"
    findings = "350b04d7768e10d3e2cf0e83bd3f3d2d9b0c11b6bc878fbf4b4291d15234a876"
    assert plan.dataset.keys["mid"] == findings


def test_the_vit_preset_is_its_expanded_settings_in_keys():
    render = {"transforms": "vit", "size": 32}
    recipe = parse_recipe({"layers": ["mix"], "model": {"source": "m"}, "render": render}, "r")
    assert recipe.render.transforms == AugmentSettings()
    keyed = recipe.render.as_dict()["transforms"]
    assert keyed == {"copies": 8, "shift": 0.14, "colour": 0.1, "decaying_noise": 0.05}
    with pytest.raises(RecipeError, match="names no preset 'vat'"):
        parse_recipe({**{"layers": ["mix"], "model": {"source": "m"}},
                      "render": {"transforms": "vat"}}, "r")  # fmt: skip


def test_the_vit_augmentation_makes_copies_with_noise_that_decays():
    settings = AugmentSettings(copies=3, jitter=0.25, colour=0.0, noise=0.5)
    image = torch.full((2, 3, 8, 8), 0.5)
    image[:, :, 0, 0] = 1.0  # a marker the shifts move

    def schedule():
        generators = [torch.Generator().manual_seed(s) for s in (1, 2)]
        return AugmentSchedule(settings, 10, generators)

    first = schedule()(image, 0)
    assert first.shape == (6, 3, 8, 8)
    torch.testing.assert_close(first, schedule()(image, 0))  # drawn from the generators
    assert first.std() > 0.3  # noise of 0.5 at the first step
    last = schedule()(image, 9)  # none at the last: only shifted copies of the image
    same = torch.sort(image.repeat(3, 1, 1, 1).flatten(1), 1)[0]
    assert torch.equal(torch.sort(last.flatten(1), 1)[0], same)
    markers = {tuple(torch.nonzero(view[0] == 1.0)[0].tolist()) for view in last}
    assert len(markers) > 1  # the copies are shifted differently


def test_a_transforms_table_changes_the_vit_preset_and_keys_what_it_adds():
    def render(transforms):
        data = {"layers": ["mix"], "model": {"source": "m"}, "render": {"transforms": transforms}}
        return parse_recipe(data, "r.toml").render

    zoomed = render({"zoom": [1, 1.5], "rotation": 15, "copies": 4})
    assert zoomed.transforms == AugmentSettings(copies=4, zoom=(1.0, 1.5), rotation=15.0)
    keyed = zoomed.as_dict()["transforms"]
    assert keyed == {"copies": 4, "shift": 0.14, "colour": 0.1, "decaying_noise": 0.05,
                     "zoom": [1.0, 1.5], "rotation": 15.0}  # fmt: skip
    assert render({"copies": 8}).transforms == AugmentSettings()  # the preset, same keys
    bad = [
        ({"zoom": [1, 1.5], "pad": 4}, "one kind at a time"),
        ({"zoom": [2, 1]}, "'render.transforms.zoom' must be"),
        ({"zoom": [1, 1.5], "rotation": 200}, "'render.transforms.rotation' must be in"),
        ({"copies": 0}, "'render.transforms.copies' must be in"),
    ]
    for transforms, message in bad:
        with pytest.raises(RecipeError, match=message) as error:
            render(transforms)
        assert error.value.exit_code == 4 and "r.toml" in str(error.value)


def test_the_vit_augmentation_zooms_about_the_centre_on_a_canvas_that_wraps():
    image = torch.zeros(1, 1, 16, 16)
    image[:, :, 6:10, 6:10] = 1.0  # a 4 px square in the middle

    def view(zoom):
        settings = AugmentSettings(copies=1, jitter=0.0, colour=0.0, noise=0.0, zoom=zoom)
        schedule = AugmentSchedule(settings, 1, [torch.Generator().manual_seed(0)])
        return schedule(image, 0)[0, 0]

    closer = view((2.0, 2.0))  # the square seen twice as large, still centred
    assert (closer > 0.5).sum() == 64 and closer[4:12, 4:12].min() > 0.5
    farther = view((0.5, 0.5))  # half as large, and the canvas wraps: four 2 px squares,
    on = torch.tensor([0, 7, 8, 15])  # one in the middle, the others across the edges
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[on[:, None], on] = True
    assert torch.equal(farther > 0.5, expected)
    preset, zoomed = (
        AugmentSchedule(s, 4, [torch.Generator().manual_seed(0)])
        for s in (AugmentSettings(), AugmentSettings(zoom=(1.0, 1.5)))
    )
    for draws in ("shift", "scale", "offset"):  # zooming leaves the preset's draws as they were
        assert torch.equal(getattr(preset, draws), getattr(zoomed, draws))


@pytest.mark.parametrize("size", [(16, 16), (16, 64)])
def test_the_vit_augmentation_turns_a_copy_on_the_torus(size):
    h, w = size
    image = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    settings = AugmentSettings(copies=1, jitter=0.0, colour=0.0, noise=0.0, rotation=90)
    schedule = AugmentSchedule(settings, 1, [torch.Generator().manual_seed(0)])
    schedule.angle.fill_(math.pi / 2)  # a quarter turn: every sample lands on a pixel
    turned = schedule(image, 0)[0]
    i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    # output pixel (i, j), (dy, dx) from the centre, shows the canvas pixel (dx, -dy) from
    # it: a quarter turn, wrapped around the canvas's edges
    y = ((j - (w - 1) / 2) + (h - 1) / 2).round().long() % h
    x = (-(i - (h - 1) / 2) + (w - 1) / 2).round().long() % w
    torch.testing.assert_close(turned, image[0][:, y, x], atol=1e-5, rtol=0)


def test_the_demo_vit_gives_its_grid_through_its_plugin():
    adapter = load_registry().load_model("shapes/vit")
    assert adapter.tokens == TokenGrid(1, (8, 8))
    (act,) = [x for x in catalogue(adapter) if x.name == "blocks.1.mlp.act"]
    assert act.shape == (384, 8, 8) and act.tokens == "65 tokens = 1 + 8×8"
    (output,) = [x for x in catalogue(adapter) if x.name == "output"]
    assert output.shape == (7, 64, 64)  # a class map like the U-Net's


def test_connections_of_token_layers_count_patch_tokens_only():
    from atlas.datasets.connections import gradients

    adapter = patches_adapter()
    images = torch.rand(2, 3, 8, 12)
    found = gradients(adapter, "mix", "attend", images, torch.tensor([0, 1]))
    # attend adds every token's mean to each token: a unit's patch mean depends on mix's
    # patch tokens with weight 1 + 6/7 and on its class token with 6/7; only patches count
    grid = mix_of(adapter, adapter.input.normalize(images))
    expected = grid.sum((2, 3))[torch.arange(2), torch.tensor([0, 1])] * (1 + 6 / 7) / 6
    picked = found.attribution[torch.arange(2), torch.tensor([0, 1])]
    torch.testing.assert_close(picked, expected)
