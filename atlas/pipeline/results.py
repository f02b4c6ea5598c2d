"""What becomes of a rendered batch: each picture encoded with its numbers for the cache."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..models.adapter import ModelAdapter
from ..models.layers import OUTPUT, forward_layers
from ..store.cache import Encoded
from .plan import Task

CURVE_POINTS = 64


def curve_points(values: np.ndarray) -> list[float]:
    """Downsample one image's objective curve to at most CURVE_POINTS values."""
    idx = np.unique(np.linspace(0, len(values) - 1, min(CURVE_POINTS, len(values))).astype(int))
    return [round(float(values[i]), 5) for i in idx]


def predicted_shares(
    adapter: ModelAdapter, tasks: Sequence[Task], images: np.ndarray, device: torch.device
) -> list[float | None]:
    """For pictures of a class channel of a per-pixel output (segmentation), return the
    share of their pixels the model predicts as that class; None for the others."""
    rows = [
        (t.meta.get("layer") == OUTPUT and t.meta.get("channel") is not None, t.meta.get("channel"))
        for t in tasks
        for _ in t.keys
    ]
    if not any(wanted for wanted, _ in rows):
        return [None] * len(rows)
    pictures = torch.from_numpy(images).permute(0, 3, 1, 2).to(device)
    adapter.module.to(device)  # the optimiser may have run a copy, leaving this one elsewhere
    if pictures.shape[1] > adapter.input.channels:  # alpha: as seen over mid-grey
        colour, alpha = pictures[:, :-1], pictures[:, -1:]
        pictures = colour * alpha + 0.5 * (1 - alpha)
    with torch.no_grad():
        out = forward_layers(adapter, adapter.input.normalize(pictures), [OUTPUT])[OUTPUT]
    if out.dim() != 4:
        return [None] * len(rows)
    predicted = out.argmax(1)
    return [
        round(float((predicted[i] == channel).float().mean()), 4) if wanted else None
        for i, (wanted, channel) in enumerate(rows)
    ]


def encode(
    tasks: Sequence[Task], result, seconds: float, shares: Sequence, lr_scale: float = 1.0
) -> list[Encoded]:
    """Encode each image of a rendered batch with its numbers, ready for the cache."""
    encoded = []
    row = 0
    for task in tasks:
        for key in task.keys:
            meta = {
                "predicted_share": shares[row],
                **task.meta,
                "name": task.name,
                "objective_final": float(result.final[row]),
                "curve": curve_points(result.curve[:, row]),
                "steps": task.settings.steps,
                "seconds": round(seconds / len(result.final), 4),
                "spec": task.spec,
            }
            if lr_scale != 1.0:
                meta["retried_with_lr_scale"] = lr_scale
            encoded.append(Encoded.of(key, result.images[row], meta, task.settings.alpha))
            row += 1
    return encoded
