"""The optimisation loop: gradient ascent on a batch of parameterised images."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .adapter import ModelAdapter
from .devices import native_bf16
from .errors import AtlasError
from .frozen import run_copy
from .layers import Probe
from .objectives import INPUT, Objective
from .params import ImageParam
from .plugins import Registry
from .regularizers import Penalty, blur_penalty
from .relu import redirect_relus
from .transforms import (
    CropSchedule,
    CropSettings,
    TransformSchedule,
    TransformSettings,
    device_generators,
)

# Bump when a change to the optimiser changes the pictures: it is part of every cache key.
ENGINE_VERSION = "2"
DEFAULT = "default"  # a setting left to the parameterization's defaults
ALPHA_BLUR_WEIGHT = 0.1


Transforms = TransformSettings | CropSettings | None
OPTIMIZERS = {"adam": torch.optim.Adam, "nadam": torch.optim.NAdam}
LR_SCHEDULES = ("constant", "cosine")  # cosine: from lr down to 0 over the steps


@dataclass(frozen=True)
class RenderSettings:
    """Everything besides the objective and seed that decides the picture.

    ``lr``, ``optimizer`` and ``transforms`` left as None / DEFAULT take the
    parameterization's own defaults when a plan resolves them (see ``resolve``).
    """

    size: tuple[int, int] | None = None  # None: the model's own input size
    model_size: tuple[int, int] | None = None  # resize each view to this first (lucent's 224)
    steps: int = 256
    lr: float | None = None
    param: str = "fft"
    param_options: dict = field(default_factory=dict)
    decorrelate: bool = True
    transforms: Transforms | str = DEFAULT
    regularizers: dict[str, float] = field(default_factory=dict)
    redirect_relu_steps: int = 16
    optimizer: str | None = None
    alpha: bool = False
    lr_schedule: str = "constant"

    def as_dict(self) -> dict:
        """Return canonical plain data for cache keys."""
        transforms = self.transforms
        return {
            "size": list(self.size) if self.size else None,
            "steps": self.steps,
            "lr": self.lr,
            "optimizer": self.optimizer,
            "param": self.param,
            "param_options": _options_identity(self.param_options),
            "decorrelate": self.decorrelate,
            "transforms": transforms.as_dict() if hasattr(transforms, "as_dict") else transforms,
            "regularizers": dict(sorted(self.regularizers.items())),
            "redirect_relu_steps": self.redirect_relu_steps,
            "alpha": self.alpha,
            "engine": ENGINE_VERSION,
            **({"model_size": list(self.model_size)} if self.model_size else {}),
            **({"lr_schedule": self.lr_schedule} if self.lr_schedule != "constant" else {}),
        }


def _options_identity(options: dict) -> dict:
    """Return parameterization options for a cache key: files by their content's digest."""
    out = {}
    for key, value in sorted(options.items()):
        if key == "spectrum" and isinstance(value, str):
            value = {"sha256": hashlib.sha256(Path(value).read_bytes()).hexdigest()}
        out[key] = value
    return out


def _transforms_from(value: object) -> Transforms:
    """Map a parameterization's default transforms (True, False, "crops") to settings."""
    if value is True:
        return TransformSettings()
    if value == "crops":
        return CropSettings()
    return value or None


def resolve(settings: RenderSettings, registry: Registry) -> RenderSettings:
    """Fill lr, optimizer and transforms left open with the parameterization's defaults."""
    factory = registry.get("parameterizations", settings.param)
    defaults = {**ImageParam.defaults, **getattr(factory, "defaults", {})}
    if settings.alpha and "alpha" not in inspect.signature(factory).parameters:
        raise AtlasError(
            f"parameterization {settings.param!r} cannot make transparent pictures; "
            "use param = 'fft', 'pixel' or 'cppn' with alpha = true"
        )
    transforms = settings.transforms
    return replace(
        settings,
        lr=float(settings.lr if settings.lr is not None else defaults["lr"]),
        optimizer=settings.optimizer or defaults["optimizer"],
        transforms=_transforms_from(defaults["transforms"])
        if transforms == DEFAULT
        else transforms,
    )


@dataclass
class RenderResult:
    """Pictures and numbers from one batch: images (B, H, W, C) in [0, 1]."""

    images: np.ndarray
    final: np.ndarray
    curve: np.ndarray = field(repr=False)


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    """Return the dtype the model runs in: ``auto`` is bf16 where the device computes bf16
    natively (most CUDA GPUs, CPUs with AVX512-BF16 or AMX), else fp32."""
    if precision == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    return PRECISIONS[precision]


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
) -> TransformSchedule | CropSchedule | None:
    """Return the transform schedule the settings ask for, drawn from the generators."""
    transforms = settings.transforms
    if isinstance(transforms, CropSettings):
        return CropSchedule(transforms, settings.steps, generators, out_size, device)
    if isinstance(transforms, TransformSettings):
        return TransformSchedule(transforms, settings.steps, generators, device)
    return None


def _prepare(
    adapter: ModelAdapter,
    seeds: Sequence[int],
    settings: RenderSettings,
    registry: Registry,
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
    make_param = registry.get("parameterizations", settings.param)
    extra = {"alpha": True} if settings.alpha else {}
    param = make_param(
        shape, generators, decorrelate=settings.decorrelate, **settings.param_options, **extra
    ).to(device)
    schedule = _schedule(settings, generators, tuple(adapter.input.size), device)
    penalties = [
        (weight, registry.get("regularizers", name)())
        for name, weight in settings.regularizers.items()
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
    registry: Registry,
    device: torch.device | str = "cpu",
    on_step: Callable[[int], None] | None = None,
    precision: str = "auto",
) -> RenderResult:
    """Optimise one image per seed so that objective (one score per image) rises.

    precision: the model's dtype, ``fp32``, ``bf16``, or ``auto`` (bf16 where the device
    has bf16 units).
    """
    device = torch.device(device)
    dtype = compute_dtype(precision, device)
    if settings.lr is None or settings.optimizer is None or settings.transforms == DEFAULT:
        settings = resolve(settings, registry)
    param, schedule, penalties, generators = _prepare(adapter, seeds, settings, registry, device)
    adapter, dtype = _runner(adapter, sorted(objective.layers), dtype, device)
    backgrounds = _Backgrounds(generators, device) if settings.alpha else None
    crops = schedule.crops if schedule else 1
    optimizer = OPTIMIZERS[settings.optimizer](param.parameters(), lr=settings.lr)
    schedule_lr = _lr_schedule(optimizer, settings)
    curve = torch.zeros(settings.steps, len(seeds), device=device)
    with Probe(adapter, objective.layers) as probe, contextlib.ExitStack() as redirect:
        redirect.enter_context(redirect_relus(adapter.module))
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
