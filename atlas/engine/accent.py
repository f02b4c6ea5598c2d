"""Feature accentuation (Hamblin, Fel et al. 2024): pictures that start from a real image
and stay near it, in one layer's activations, while the unit rises.

The term is α·b·d at the accent layer, with d = ‖A(x) − A(seed)‖ / ‖A(seed)‖ (the
relative L2 distance, not its square: the square's gradient vanishes at the seed) and
b = ‖∇objective‖ / ‖∇d‖ measured per picture at step 1, the first step where the picture
has left its seed (at step 0 it is the seed and the term is not added), so α is
scale-free.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from ..images import as_float, read_image
from ..models.adapter import ModelAdapter
from ..models.layers import Probe
from ..recipe.settings import FileRef, RenderSettings


def seed_images(
    settings: RenderSettings,
    starts: Sequence[np.ndarray | None] | None,
    shape: tuple[int, int, int, int],
) -> torch.Tensor | None:
    """Return the (B, C, H, W) images the batch starts from: each picture's own (starts:
    float in [0, 1] or 8-bit), else the settings' seed file; None when they start from noise."""
    b, c, h, w = shape
    if starts is not None and any(s is not None for s in starts):
        if any(s is None for s in starts):
            raise ValueError("either every picture of a batch starts from an image or none")
        images = list(starts)
    elif isinstance(settings.seed_image, FileRef | str):
        path = getattr(settings.seed_image, "path", settings.seed_image)
        images = [read_image(path)] * b
    else:
        return None
    fitted = [_fit(as_float(image), c, h, w) for image in images]
    return torch.from_numpy(np.stack(fitted))


def _fit(image: np.ndarray, c: int, h: int, w: int) -> np.ndarray:
    """Return an (H, W, C') image in [0, 1] as (c, h, w): resized, its channels matched."""
    if image.shape[:2] != (h, w):
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        image = image[..., None] if image.ndim == 2 else image
    if image.shape[-1] != c:
        image = np.repeat(image.mean(-1, keepdims=True), c, -1)
    return np.clip(image, 0.0, 1.0).transpose(2, 0, 1)


class Accent:
    """The L2 term that keeps the accent layer's activations near the seed's."""

    def __init__(self, adapter: ModelAdapter, layer: str, weight: float, as_input) -> None:
        self.adapter, self.layer, self.weight = adapter, layer, weight
        self.as_input = as_input  # picture -> what the model takes
        self.target: torch.Tensor | None = None
        self.power: torch.Tensor | None = None
        self.balance: torch.Tensor | None = None

    def activations(self, picture: torch.Tensor) -> torch.Tensor:
        """Return the accent layer's activations for a batch of pictures, as float32."""
        with Probe(self.adapter, [self.layer]) as probe:
            return probe(self.as_input(picture))[self.layer].float()

    def remember(self, seed: torch.Tensor) -> None:
        """Store the seed's activations, the point the L2 term pulls towards."""
        with torch.no_grad():
            self.target = self.activations(seed)
        self.power = self.target.flatten(1).pow(2).mean(1).clamp_min(1e-12)

    def penalty(
        self, picture: torch.Tensor, score: torch.Tensor, params: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Return α·b·L2 per picture; b is measured the first time (from gradients)."""
        moved = (self.activations(picture) - self.target).flatten(1).pow(2).mean(1) / self.power
        moved = (moved + 1e-12).sqrt()  # a distance: its gradient does not vanish near the seed
        if self.balance is None:
            self.balance = _norm(score.sum(), params) / _norm(moved.sum(), params).clamp_min(1e-12)
        return self.weight * self.balance * moved


def _norm(value: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Return the gradient norm of value per picture (every parameter's first axis is the
    batch), detached."""
    grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
    total = None
    for g in grads:
        if g is None:
            continue
        part = g.detach().flatten(1).pow(2).sum(1)
        total = part if total is None else total + part
    if total is None:
        raise ValueError("the accent layer does not depend on the picture")
    return total.sqrt()
