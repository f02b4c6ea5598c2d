"""The optimisation loop: gradient ascent on a batch of parameterised images."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .adapter import ModelAdapter
from .layers import Probe
from .objectives import Objective
from .params import ImageParam
from .plugins import Registry
from .regularizers import Penalty
from .relu import redirect_relus
from .transforms import TransformSchedule, TransformSettings

# Bump when a change to the optimiser changes the pictures: it is part of every cache key.
ENGINE_VERSION = "1"


@dataclass(frozen=True)
class RenderSettings:
    """Everything besides the objective and seed that decides the picture."""

    size: tuple[int, int] | None = None  # None: the model's own input size
    steps: int = 256
    lr: float = 0.05
    param: str = "fft"
    param_options: dict = field(default_factory=dict)
    decorrelate: bool = True
    transforms: TransformSettings | None = field(default_factory=TransformSettings)
    regularizers: dict[str, float] = field(default_factory=dict)
    redirect_relu_steps: int = 16

    def as_dict(self) -> dict:
        """Return canonical plain data for cache keys."""
        return {
            "size": list(self.size) if self.size else None,
            "steps": self.steps,
            "lr": self.lr,
            "param": self.param,
            "param_options": dict(sorted(self.param_options.items())),
            "decorrelate": self.decorrelate,
            "transforms": self.transforms.as_dict() if self.transforms else None,
            "regularizers": dict(sorted(self.regularizers.items())),
            "redirect_relu_steps": self.redirect_relu_steps,
            "engine": ENGINE_VERSION,
        }


@dataclass
class RenderResult:
    """Pictures and numbers from one batch: images (B, H, W, C) in [0, 1]."""

    images: np.ndarray
    final: np.ndarray
    curve: np.ndarray = field(repr=False)


def _autocast(device: torch.device):
    """Return bf16 autocast on CUDA, nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _model_input(adapter: ModelAdapter, image: torch.Tensor) -> torch.Tensor:
    """Resize for fixed-size models and normalise as the model expects."""
    if adapter.input.fixed_size and tuple(image.shape[-2:]) != tuple(adapter.input.size):
        image = F.interpolate(image, size=adapter.input.size, mode="bilinear", align_corners=False)
    image = adapter.input.normalize(image)
    if image.is_cuda:
        image = image.contiguous(memory_format=torch.channels_last)
    return image


def _score(
    adapter: ModelAdapter, objective: Objective, probe: Probe, image: torch.Tensor
) -> torch.Tensor:
    """Return the objective's float32 score per image."""
    with _autocast(image.device):
        return objective(probe(_model_input(adapter, image))).float()


def _prepare(
    adapter: ModelAdapter,
    seeds: Sequence[int],
    settings: RenderSettings,
    registry: Registry,
    device: torch.device,
) -> tuple[ImageParam, TransformSchedule | None, list[tuple[float, Penalty]]]:
    """Build the batch's images, its transform schedule and its penalties on device."""
    generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
    shape = (len(seeds), adapter.input.channels, *(settings.size or adapter.input.size))
    make_param = registry.get("parameterizations", settings.param)
    param = make_param(
        shape, generators, decorrelate=settings.decorrelate, **settings.param_options
    ).to(device)
    schedule = (
        TransformSchedule(settings.transforms, settings.steps, generators, device)
        if settings.transforms
        else None
    )
    penalties = [
        (weight, registry.get("regularizers", name)())
        for name, weight in settings.regularizers.items()
    ]
    adapter.module.to(device)
    if device.type == "cuda":
        adapter.module.to(memory_format=torch.channels_last)
    return param, schedule, penalties


def render(
    adapter: ModelAdapter,
    objective: Objective,
    seeds: Sequence[int],
    settings: RenderSettings,
    registry: Registry,
    device: torch.device | str = "cpu",
    on_step: Callable[[int], None] | None = None,
) -> RenderResult:
    """Optimise one image per seed so that objective (one score per image) rises."""
    device = torch.device(device)
    param, schedule, penalties = _prepare(adapter, seeds, settings, registry, device)
    optimizer = torch.optim.Adam(param.parameters(), lr=settings.lr)
    curve = torch.zeros(settings.steps, len(seeds), device=device)
    with Probe(adapter, objective.layers) as probe, contextlib.ExitStack() as redirect:
        redirect.enter_context(redirect_relus(adapter.module))
        for step in range(settings.steps):
            if step == settings.redirect_relu_steps:
                redirect.close()
            image = param()
            score = _score(adapter, objective, probe, schedule(image, step) if schedule else image)
            loss = -score.sum() + sum(w * penalty(image).sum() for w, penalty in penalties)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            curve[step] = score.detach()
            if on_step:
                on_step(step)
        redirect.close()
        with torch.no_grad():
            image = param()
            final = _score(adapter, objective, probe, image)
    return RenderResult(
        images=image.float().permute(0, 2, 3, 1).cpu().numpy(),
        final=final.cpu().numpy(),
        curve=curve.cpu().numpy(),
    )
