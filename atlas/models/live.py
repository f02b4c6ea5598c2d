"""A live ``nn.Module`` as a model adapter, for notebooks and ``atlas.build(model=...)``."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import AtlasError, suggest
from .adapter import IMAGENET_MEAN, IMAGENET_STD, InputSpec, ModelAdapter


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
