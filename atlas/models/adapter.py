"""What the optimizer needs to know about a model, as plain data around the module."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..constants import constant
from .tokens import TokenGrid, detect

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """The input a model expects: channels, size, normalisation and value range."""

    channels: int = 3
    size: tuple[int, int] = (224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    value_range: tuple[float, float] = (0.0, 1.0)
    fixed_size: bool = False

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """Map an NCHW image in [0, 1] to what the model takes."""
        lo, hi = self.value_range
        mean = constant(self.mean, image.device, image.dtype)
        std = constant(self.std, image.device, image.dtype)
        scaled = image * (hi - lo) + lo
        return (scaled - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)

    def as_dict(self) -> dict:
        """Return plain data for manifests and cache keys."""
        return {
            "channels": self.channels,
            "size": list(self.size),
            "mean": list(self.mean),
            "std": list(self.std),
            "value_range": list(self.value_range),
            "fixed_size": self.fixed_size,
        }


@dataclass
class ModelAdapter:
    """A loaded model plus the metadata the optimizer and the site need.

    ``weights_digest`` must change whenever the weights do: it is part of every cache key.
    """

    module: nn.Module
    source: str
    weights_digest: str
    input: InputSpec = field(default_factory=InputSpec)
    weights: str | None = None
    labels: Mapping[str, Sequence[str]] = field(default_factory=dict)
    output: Callable[[object], torch.Tensor] | None = None
    description: str = ""
    tokens: TokenGrid | None = None  # a transformer's token layout (detected when None)

    def __post_init__(self) -> None:
        if self.tokens is None:
            self.tokens = detect(self.module)
        self.module.eval()
        for parameter in self.module.parameters():  # ScriptModules lack requires_grad_()
            parameter.requires_grad_(False)

    def model_output(self, raw: object) -> torch.Tensor:
        """Pick the tensor that the ``output`` layer stands for from a forward's result."""
        if self.output is not None:
            return self.output(raw)
        return default_output(raw)

    def identity(self) -> dict:
        """Return the plain data that identifies these weights in cache keys."""
        return {"source": self.source, "weights": self.weights, "digest": self.weights_digest}


def default_output(raw: object) -> torch.Tensor:
    """Return the tensor of a forward's result: itself, ``out`` of a dict, first of a tuple."""
    if isinstance(raw, torch.Tensor):
        return raw
    if isinstance(raw, Mapping):
        return raw["out"] if "out" in raw else next(iter(raw.values()))
    if isinstance(raw, (tuple, list)) and raw:
        return default_output(raw[0])
    raise TypeError(f"model output of type {type(raw).__name__} holds no tensor")
