"""The Python API: build an atlas from a recipe file or straight from an ``nn.Module``."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import torch
from torch import nn

from .adapter import IMAGENET_MEAN, IMAGENET_STD, InputSpec, ModelAdapter
from .errors import AtlasError, suggest
from .pipeline import BuildResult, run_build
from .recipe import Recipe, load_recipe
from .render import RenderSettings


def module_digest(module: nn.Module) -> str:
    """Hash a module's class and state dict, so cache keys change when its weights do."""
    h = hashlib.sha256(type(module).__qualname__.encode())
    for name, tensor in sorted(module.state_dict().items()):
        h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def adapt(
    module: nn.Module,
    input_size: int | tuple[int, int] = 224,
    channels: int = 3,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    labels: Sequence[str] | None = None,
    name: str | None = None,
) -> ModelAdapter:
    """Wrap a live module in an adapter; mean and std default to ImageNet's for RGB."""
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    mean = tuple(mean) if mean else (IMAGENET_MEAN if channels == 3 else (0.5,) * channels)
    std = tuple(std) if std else (IMAGENET_STD if channels == 3 else (0.25,) * channels)
    spec = InputSpec(channels=channels, size=size, mean=mean, std=std)
    return ModelAdapter(
        module=module,
        source=f"python/{name or type(module).__name__}",
        input=spec,
        weights_digest=module_digest(module),
        labels={"output": list(labels)} if labels else {},
    )


def build(
    recipe: str | Path | Recipe | None = None,
    *,
    model: nn.Module | ModelAdapter | str | None = None,
    layers: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    title: str | None = None,
    batch_size: int = 64,
    jobs: int = 1,
    max_channels: int | None = None,
    device: str = "auto",
    show_progress: bool = True,
    options: dict | None = None,
    **render,
) -> BuildResult:
    """Build an atlas from a recipe file, or from a model plus layer names.

    ``model`` may be a live ``nn.Module`` (``options`` then holds adapt()'s keywords:
    input_size, channels, mean, std, labels), an adapter, or a source string such as
    ``"torchvision/resnet18"`` (``options`` as a recipe's model.options). ``render``
    keywords are RenderSettings fields (size, steps, lr, param, ...).
    """
    if model is None:
        parsed = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
        return run_build(parsed, cache_dir, out_dir, show_progress=show_progress)
    if not layers:
        raise AtlasError("atlas.build(model=...) needs layers=[...], e.g. layers=['output']")
    known = {f.name for f in fields(RenderSettings)}
    for key in render:
        if key not in known:
            raise AtlasError(f"atlas.build() got an unknown keyword {key!r}{suggest(key, known)}")
    adapter = None
    if isinstance(model, nn.Module):
        adapter = adapt(model, **(options or {}))
    elif isinstance(model, ModelAdapter):
        adapter = model
    source = adapter.source if adapter else str(model)
    name = source.replace("/", "-").replace(":", "-")
    parsed = Recipe(
        model=source,
        layers=list(layers),
        name=name,
        title=title or source,
        model_options={} if adapter else dict(options or {}),
        render=RenderSettings(**render),
        batch_size=batch_size,
        jobs=jobs,
        device=device,
        max_channels=max_channels,
    )
    return run_build(parsed, cache_dir, out_dir, adapter=adapter, show_progress=show_progress)
