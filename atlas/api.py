"""The Python API: build an atlas from a recipe file or straight from an ``nn.Module``."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .adapter import IMAGENET_MEAN, IMAGENET_STD, InputSpec, ModelAdapter
from .errors import AtlasError, suggest
from .pipeline import BuildResult, run_build
from .recipe import Recipe, check_keywords, load_recipe, render_settings, unit_settings
from .sources.common import warn_random_weights


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
    value_range: Sequence[float] = (0.0, 1.0),
    fixed_size: bool = False,
) -> ModelAdapter:
    """Wrap a live module in an adapter; mean and std default to ImageNet's for RGB."""
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    mean = tuple(mean) if mean else (IMAGENET_MEAN if channels == 3 else (0.5,) * channels)
    std = tuple(std) if std else (IMAGENET_STD if channels == 3 else (0.25,) * channels)
    lo, hi = (float(v) for v in value_range)
    spec = InputSpec(
        channels=channels,
        size=size,
        mean=mean,
        std=std,
        value_range=(lo, hi),
        fixed_size=bool(fixed_size),
    )
    return ModelAdapter(
        module=module,
        source=f"python/{name or type(module).__name__}",
        input=spec,
        weights_digest=module_digest(module),
        labels={"output": list(labels)} if labels else {},
    )


def as_adapter(model: nn.Module | ModelAdapter, options: dict | None = None) -> ModelAdapter:
    """Return an adapter for a live module (options: adapt()'s keywords) or the adapter."""
    if isinstance(model, ModelAdapter):
        return model
    try:
        return adapt(model, **(options or {}))
    except TypeError:
        known = [p for p in inspect.signature(adapt).parameters if p != "module"]
        bad = next((k for k in options or {} if k not in known), None)
        raise AtlasError(
            f"options for a live module take {', '.join(known)}; not {bad!r}"
            f"{suggest(bad or '', known)}"
        ) from None


def build(
    recipe: str | Path | Recipe | None = None,
    *,
    model: nn.Module | ModelAdapter | str | None = None,
    layers: Sequence[str] | None = None,
    weights: str | None = None,
    out_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    title: str | None = None,
    batch_size: int = 64,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    max_channels: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    show_progress: bool = True,
    options: dict | None = None,
    **render,
) -> BuildResult:
    """Build an atlas from a recipe file, or from a model plus layer names.

    ``model`` may be a live ``nn.Module`` (``options`` then holds adapt()'s keywords:
    input_size, channels, mean, std, labels), an adapter, or a source string such as
    ``"torchvision/resnet18"`` (``weights`` and ``options`` as a recipe's model.weights and
    model.options; without weights, torchvision and timm models are untrained). ``render``
    keywords are the recipe's ``[render]`` keys, with the values a recipe takes
    (``size=128``, ``transforms=False``, ``regularizers={"tv": 0.05}``, ...).
    """
    if model is None:
        parsed = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
        result = run_build(parsed, cache_dir, out_dir, show_progress=show_progress)
        if parsed.weights is None:
            _warn_untrained(result, "set model.weights")
        return result
    if not layers:
        raise AtlasError("atlas.build(model=...) needs layers=[...], e.g. layers=['output']")
    check_keywords(render, "atlas.build()")
    settings = render_settings(render, "atlas.build()")
    adapter = None
    if isinstance(model, (nn.Module, ModelAdapter)):
        if weights is not None:
            raise AtlasError("weights= goes with a source string; a live module has its own")
        adapter = as_adapter(model, options)
    source = adapter.source if adapter else str(model)
    name = source.replace("/", "-").replace(":", "-")
    parsed = Recipe(
        model=source,
        weights=weights,
        layers=list(layers),
        name=name,
        title=title or source,
        model_options={} if adapter else dict(options or {}),
        render=settings,
        batch_size=batch_size,
        jobs=jobs,
        backend="dask" if scheduler else backend,
        scheduler=scheduler,
        device=device,
        precision=precision,
        max_channels=max_channels,
        **unit_settings(render, "atlas.build()"),
    )
    result = run_build(parsed, cache_dir, out_dir, adapter=adapter, show_progress=show_progress)
    if weights is None:
        _warn_untrained(result, "pass weights=")
    return result


def _warn_untrained(result: BuildResult, fix: str) -> None:
    """Warn the caller of build() if its model ran with random weights."""
    model = result.manifest["model"]
    warn_random_weights(model["source"], model["digest"], fix)
