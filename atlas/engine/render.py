"""The optimisation loop: gradient ascent on a batch of parameterised images."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from ..contracts import ParamFactory, RegularizerFactory
from ..models.adapter import ModelAdapter
from ..models.frozen import run_copy
from ..models.layers import Probe
from ..recipe.settings import (
    AugmentSettings,
    CropSettings,
    FileRef,
    RenderSettings,
    TransformSettings,
)
from .accent import Accent, seed_images
from .objectives import INPUT, Objective
from .params import ImageParam
from .precision import compute_dtype
from .regularizers import Penalty, blur_penalty
from .relu import redirect_activations
from .transforms import AugmentSchedule, CropSchedule, TransformSchedule, device_generators

ALPHA_BLUR_WEIGHT = 0.1
OPTIMIZERS = {"adam": torch.optim.Adam, "nadam": torch.optim.NAdam}


@dataclass(frozen=True)
class Kit:
    """What a batch's settings name, resolved to factories: the parameterization's and each
    regularizer's (by name)."""

    param: ParamFactory
    regularizers: dict[str, RegularizerFactory] = field(default_factory=dict)


@dataclass
class RenderResult:
    """Pictures and numbers from one batch: images (B, H, W, C) in [0, 1]."""

    images: np.ndarray
    final: np.ndarray
    curve: np.ndarray = field(repr=False)


def _runner(
    adapter: ModelAdapter, layers: Sequence[str], dtype: torch.dtype, device: torch.device
) -> tuple[ModelAdapter, torch.dtype]:
    """Return the adapter to optimise through (a folded, cast copy where that gains) and
    the dtype it takes (fp32 for a module that stays as it is, as TorchScript does)."""
    runner = run_copy(adapter, layers, dtype, device)
    if runner is not adapter:
        return runner, dtype
    adapter.module.to(device)
    if not isinstance(adapter.module, torch.jit.ScriptModule):
        adapter.module.to(memory_format=torch.channels_last)
    return adapter, torch.float32


def model_input(
    adapter: ModelAdapter, image: torch.Tensor, model_size: tuple[int, int] | None = None
) -> torch.Tensor:
    """Resize to the size the model must see (a fixed-size model's own, else model_size if
    given; else the canvas as it is) and normalise as the model expects."""
    size = tuple(adapter.input.size) if adapter.input.fixed_size else model_size
    if size and tuple(image.shape[-2:]) != tuple(size):
        image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
    image = adapter.input.normalize(image)
    if image.is_cuda:
        image = image.contiguous(memory_format=torch.channels_last)
    return image


def _score(
    adapter: ModelAdapter,
    objective: Objective,
    probe: Probe,
    view: torch.Tensor,
    picture: torch.Tensor,
    crops: int = 1,
    model_size: tuple[int, int] | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Return the objective's float32 score per picture, averaged over its crops.

    view holds crops x B transformed images (crop-major); objectives also see the
    untransformed picture under ``'input'``. The model runs in dtype; objectives see float32.
    """
    acts = probe(model_input(adapter, view, model_size).to(dtype))
    b = picture.shape[0]
    scores = []
    for k in range(crops):
        chunk = {name: act[k * b : (k + 1) * b].float() for name, act in acts.items()}
        chunk[INPUT] = picture
        scores.append(objective(chunk).float())
    return scores[0] if crops == 1 else torch.stack(scores).mean(0)


def _as_input(adapter: ModelAdapter, model_size, dtype, picture: torch.Tensor) -> torch.Tensor:
    """Return a picture as the model takes it (resized, normalised, in its dtype)."""
    return model_input(adapter, picture, model_size).to(dtype)


class _Backgrounds:
    """Random backgrounds for transparent pictures: smooth noise, new every step."""

    def __init__(self, generators: Sequence[torch.Generator], device: torch.device):
        self.generators = device_generators(generators, device)

    def composite(self, picture: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the colours laid over a fresh background, and the alpha channel."""
        colour, alpha = picture[:, :-1], picture[:, -1:]
        c, (h, w) = colour.shape[1], colour.shape[-2:]
        small = (c, max(1, h // 8), max(1, w // 8))
        noise = torch.stack(
            [torch.rand(small, generator=g, device=picture.device) for g in self.generators]
        )
        background = F.interpolate(noise, size=(h, w), mode="bilinear", align_corners=False)
        return colour * alpha + background.to(colour.dtype) * (1 - alpha), alpha


def _over_grey(picture: torch.Tensor, alpha: bool) -> torch.Tensor:
    """Return a picture as the model sees it for its final score: alpha over mid-grey."""
    if not alpha:
        return picture
    colour, opacity = picture[:, :-1], picture[:, -1:]
    return colour * opacity + 0.5 * (1 - opacity)


def _schedule(
    settings: RenderSettings,
    generators: Sequence[torch.Generator],
    out_size: tuple[int, int],
    device: torch.device,
) -> TransformSchedule | CropSchedule | AugmentSchedule | None:
    """Return the transform schedule the settings ask for, drawn from the generators."""
    transforms = settings.transforms
    if isinstance(transforms, AugmentSettings):
        return AugmentSchedule(transforms, settings.steps, generators, device)
    if isinstance(transforms, CropSettings):
        return CropSchedule(transforms, settings.steps, generators, out_size, device)
    if isinstance(transforms, TransformSettings):
        return TransformSchedule(transforms, settings.steps, generators, device)
    return None


def _prepare(
    adapter: ModelAdapter,
    seeds: Sequence[int],
    settings: RenderSettings,
    kit: Kit,
    device: torch.device,
) -> tuple[
    ImageParam,
    TransformSchedule | CropSchedule | None,
    list[tuple[float, Penalty]],
    list[torch.Generator],
]:
    """Build the batch's images, transform schedule, penalties and generators on device."""
    generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
    shape = (len(seeds), adapter.input.channels, *(settings.size or adapter.input.size))
    options = {
        k: v.path if isinstance(v, FileRef) else v for k, v in settings.param_options.items()
    }
    if settings.alpha:
        options["alpha"] = True
    param = kit.param(shape, generators, decorrelate=settings.decorrelate, **options).to(device)
    schedule = _schedule(settings, generators, tuple(adapter.input.size), device)
    penalties = [
        (weight, kit.regularizers[name]()) for name, weight in settings.regularizers.items()
    ]
    return param, schedule, penalties, generators


def _lr_schedule(optimizer: torch.optim.Optimizer, settings: RenderSettings):
    """Return the learning-rate scheduler the settings ask for (stepped once per step),
    None for a constant rate."""
    if settings.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.steps)
    return None


def render(
    adapter: ModelAdapter,
    objective: Objective,
    seeds: Sequence[int],
    settings: RenderSettings,
    kit: Kit,
    device: torch.device | str = "cpu",
    on_step: Callable[[int], None] | None = None,
    precision: str = "auto",
    starts: Sequence[np.ndarray | None] | None = None,
) -> RenderResult:
    """Optimise one image per seed so that objective (one score per image) rises.

    settings must be settled (lr, optimizer and transforms known); kit holds the factories
    they name. precision: the model's dtype, ``fp32``, ``bf16``, or ``auto`` (bf16 where the
    device has bf16 units). starts: an (H, W, C) image in [0, 1] per seed to start from
    (feature accentuation; else the settings' seed_image, if any).
    """
    if not settings.settled:
        raise ValueError("render() needs settled settings: lr, optimizer and transforms set")
    device = torch.device(device)
    dtype = compute_dtype(precision, device)
    param, schedule, penalties, generators = _prepare(adapter, seeds, settings, kit, device)
    shape = (len(seeds), adapter.input.channels, *settings.size)
    seeded = seed_images(settings, starts, shape)
    if settings.accentuate and seeded is None:
        raise ValueError("accentuate: the unit has no dataset example to start from yet")
    if seeded is not None:
        param.start_from(seeded.to(device))
    if seeded is not None and settings.accent_layer is None:
        raise ValueError("a seeded render needs its accent layer settled (make_task does it)")
    probed = sorted(objective.layers | ({settings.accent_layer} if seeded is not None else set()))
    adapter, dtype = _runner(adapter, probed, dtype, device)
    accent = None
    if seeded is not None and settings.accent_weight > 0:
        as_input = partial(_as_input, adapter, settings.model_size, dtype)
        accent = Accent(adapter, settings.accent_layer, settings.accent_weight, as_input)
        accent.remember(seeded.to(device))
    backgrounds = _Backgrounds(generators, device) if settings.alpha else None
    crops = schedule.crops if schedule else 1
    optimizer = OPTIMIZERS[settings.optimizer](param.parameters(), lr=settings.lr)
    schedule_lr = _lr_schedule(optimizer, settings)
    curve = torch.zeros(settings.steps, len(seeds), device=device)
    with Probe(adapter, objective.layers) as probe, contextlib.ExitStack() as redirect:
        redirect.enter_context(redirect_activations(adapter.module))
        for step in range(settings.steps):
            if step == settings.redirect_relu_steps:
                redirect.close()
            picture = param()
            image, alpha = backgrounds.composite(picture) if backgrounds else (picture, None)
            view = schedule(image, step) if schedule else image
            score = _score(
                adapter, objective, probe, view, image, crops, settings.model_size, dtype
            )
            loss = -score.sum() + sum(w * penalty(image).sum() for w, penalty in penalties)
            if accent is not None and step > 0:  # at step 0 the picture is its seed
                with probe.paused():
                    loss = loss + accent.penalty(image, score, list(param.parameters())).sum()
            if alpha is not None:
                loss = loss + (score * alpha.flatten(1).mean(1)).sum()
                loss = loss + ALPHA_BLUR_WEIGHT * blur_penalty(alpha).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule_lr:
                schedule_lr.step()
            curve[step] = score.detach()
            if on_step:
                on_step(step)
        redirect.close()
        with torch.no_grad():
            picture = param()
            image = _over_grey(picture, settings.alpha)
            final = _score(adapter, objective, probe, image, image, 1, settings.model_size, dtype)
    return RenderResult(
        images=picture.float().permute(0, 2, 3, 1).cpu().numpy(),
        final=final.cpu().numpy(),
        curve=curve.cpu().numpy(),
    )
