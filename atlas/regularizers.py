"""Regularizers: penalties per image, subtracted from the objective with a weight."""

from __future__ import annotations

from collections.abc import Callable

import torch

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
