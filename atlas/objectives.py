"""Objectives as values with algebra; each returns one score per batch element."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from numbers import Real

import numpy as np
import torch
import torch.nn.functional as F

Acts = Mapping[str, torch.Tensor]


class Objective:
    """A differentiable score per image; combine with ``+``, ``-``, ``*`` and ``sum``."""

    def __call__(self, acts: Acts) -> torch.Tensor:
        raise NotImplementedError

    @property
    def layers(self) -> frozenset[str]:
        """Return the layers whose activations this objective reads."""
        raise NotImplementedError

    @property
    def spec(self) -> dict:
        """Return the canonical plain-data description used in cache keys."""
        raise NotImplementedError

    def terms(self) -> list[tuple[float, Objective]]:
        """Return this objective as a flat list of (weight, objective) terms."""
        return [(1.0, self)]

    def __add__(self, other: Objective | Real) -> Objective:
        if isinstance(other, Real):
            return self if other == 0 else NotImplemented
        return Sum(self.terms() + other.terms())

    __radd__ = __add__

    def __sub__(self, other: Objective) -> Objective:
        return self + (-1.0) * other

    def __neg__(self) -> Objective:
        return (-1.0) * self

    def __mul__(self, weight: Real) -> Objective:
        if not isinstance(weight, Real):
            return NotImplemented
        return Sum([(float(weight) * w, term) for w, term in self.terms()])

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"Objective({self.spec})"


class Sum(Objective):
    """A weighted sum of terms, kept flat so long sums never recurse."""

    def __init__(self, terms: Iterable[tuple[float, Objective]]):
        self._terms = list(terms)

    def __call__(self, acts: Acts) -> torch.Tensor:
        return sum(w * term(acts) for w, term in self._terms)

    def terms(self) -> list[tuple[float, Objective]]:
        return list(self._terms)

    @property
    def layers(self) -> frozenset[str]:
        return frozenset().union(*(term.layers for _, term in self._terms))

    @property
    def spec(self) -> dict:
        return {"type": "sum", "terms": [{"weight": w, "term": t.spec} for w, t in self._terms]}


def _per_image_channels(channels: int | Sequence[int], batch: int, device) -> torch.Tensor:
    """Return a (batch,) index tensor: one channel per image, or one for all."""
    if isinstance(channels, int):
        return torch.full((batch,), channels, dtype=torch.long, device=device)
    index = torch.as_tensor(list(channels), dtype=torch.long, device=device)
    if index.numel() != batch:
        raise ValueError(f"objective names {index.numel()} channels for a batch of {batch}")
    return index


def _gather(act: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Pick channel index[i] of image i: NCHW gives (B, H, W), NTD (B, T), NC (B,)."""
    rows = torch.arange(act.shape[0], device=act.device)
    if act.dim() == 3:
        return act[rows, :, index]
    return act[rows, index]


def _mask_weights(mask: np.ndarray | torch.Tensor, size: tuple[int, int], device) -> torch.Tensor:
    """Resize a (H, W) or (B, H, W) mask to the activation's size, normalised to mean 1."""
    weights = torch.as_tensor(np.asarray(mask, dtype=np.float32), device=device)
    weights = weights[None, None] if weights.dim() == 2 else weights[:, None]
    weights = F.interpolate(weights, size=size, mode="bilinear", align_corners=False)[:, 0]
    return weights / weights.mean(dim=(-2, -1), keepdim=True).clamp_min(1e-8)


class Channel(Objective):
    """Mean activation of one channel per image (image i maximises channel c_i)."""

    def __init__(self, layer: str, channels: int | Sequence[int], mask=None):
        self.layer = layer
        self.channels = channels if isinstance(channels, int) else [int(c) for c in channels]
        self.mask = mask

    def __call__(self, acts: Acts) -> torch.Tensor:
        act = acts[self.layer]
        picked = _gather(act, _per_image_channels(self.channels, act.shape[0], act.device))
        if picked.dim() == 3 and self.mask is not None:
            picked = picked * _mask_weights(self.mask, tuple(picked.shape[-2:]), act.device)
        return picked.flatten(1).mean(1) if picked.dim() > 1 else picked

    @property
    def layers(self) -> frozenset[str]:
        return frozenset({self.layer})

    @property
    def spec(self) -> dict:
        spec = {"type": "channel", "layer": self.layer, "channel": self.channels}
        if self.mask is not None:
            spec["mask"] = np.asarray(self.mask, dtype=np.float32).round(4).tolist()
        return spec


class Neuron(Objective):
    """One channel at one spatial position (the centre unless x, y are given)."""

    def __init__(self, layer: str, channels: int | Sequence[int], x=None, y=None):
        self.layer, self.x, self.y = layer, x, y
        self.channels = channels if isinstance(channels, int) else [int(c) for c in channels]

    def __call__(self, acts: Acts) -> torch.Tensor:
        act = acts[self.layer]
        picked = _gather(act, _per_image_channels(self.channels, act.shape[0], act.device))
        if picked.dim() != 3:
            return picked if picked.dim() == 1 else picked.mean(1)
        h, w = picked.shape[-2:]
        y = h // 2 if self.y is None else self.y
        x = w // 2 if self.x is None else self.x
        return picked[:, y, x]

    @property
    def layers(self) -> frozenset[str]:
        return frozenset({self.layer})

    @property
    def spec(self) -> dict:
        return {
            "type": "neuron",
            "layer": self.layer,
            "channel": self.channels,
            "x": self.x,
            "y": self.y,
        }


class LayerEnergy(Objective):
    """Mean squared activation of a whole layer (DeepDream)."""

    def __init__(self, layer: str):
        self.layer = layer

    def __call__(self, acts: Acts) -> torch.Tensor:
        return acts[self.layer].pow(2).flatten(1).mean(1)

    @property
    def layers(self) -> frozenset[str]:
        return frozenset({self.layer})

    @property
    def spec(self) -> dict:
        return {"type": "layer", "layer": self.layer}


def channel(layer: str, channels: int | Sequence[int], mask=None) -> Objective:
    """Maximise the mean of a channel (one per image when channels is a sequence)."""
    return Channel(layer, channels, mask)


def neuron(layer: str, channels: int | Sequence[int], x=None, y=None) -> Objective:
    """Maximise one channel at one position, the centre by default."""
    return Neuron(layer, channels, x, y)


def layer(layer: str) -> Objective:
    """Maximise the energy of a whole layer, as DeepDream does."""
    return LayerEnergy(layer)
