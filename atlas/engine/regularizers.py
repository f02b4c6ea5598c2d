"""Regularizers: penalties per image, subtracted from the objective with a weight."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Penalty = Callable[[torch.Tensor], torch.Tensor]


def total_variation() -> Penalty:
    """Penalise differences between neighbouring pixels (smoother pictures)."""

    def penalty(image: torch.Tensor) -> torch.Tensor:
        dy = (image[..., 1:, :] - image[..., :-1, :]).abs().flatten(1).mean(1)
        dx = (image[..., :, 1:] - image[..., :, :-1]).abs().flatten(1).mean(1)
        return dx + dy

    return penalty


def l1(center: float = 0.5) -> Penalty:
    """Penalise the mean absolute distance of pixels from a centre value."""
    return lambda image: (image - center).abs().flatten(1).mean(1)


def l2(center: float = 0.5) -> Penalty:
    """Penalise the mean squared distance of pixels from a centre value."""
    return lambda image: (image - center).pow(2).flatten(1).mean(1)


def blur_penalty(image: torch.Tensor) -> torch.Tensor:
    """Return 0.5 x mean squared difference between image and its fixed 3x3 blur, per image."""
    channels = image.shape[1]
    kernel = torch.ones(channels, 1, 3, 3, device=image.device, dtype=image.dtype) / 9.0
    blurred = F.conv2d(F.pad(image, (1, 1, 1, 1), mode="replicate"), kernel, groups=channels)
    return 0.5 * (image - blurred.detach()).pow(2).flatten(1).mean(1)


def blur() -> Penalty:
    """Penalise detail finer than a 3x3 blur (lucid's blur penalty)."""
    return blur_penalty
