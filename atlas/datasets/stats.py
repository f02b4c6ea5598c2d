"""Running statistics of a streaming pass: per-unit top-k with positions, exact quantiles
from a kept tail, and each unit's value on an image."""

from __future__ import annotations

import math

import numpy as np
import torch


class RunningTopK:
    """The k largest values seen per channel, with their image index and position.

    Ties go to the lower image index, so the result does not depend on batching.
    """

    def __init__(self, channels: int, k: int):
        self.k = k
        self.values = np.full((channels, 0), -np.inf, np.float32)
        self.indices = np.zeros((channels, 0), np.int64)
        self.positions = np.zeros((channels, 0, 2), np.int32)

    def update(self, values: np.ndarray, indices: np.ndarray, positions: np.ndarray) -> None:
        """Merge a batch: values (B, C), indices (B,), positions (B, C, 2)."""
        c = self.values.shape[0]
        all_values = np.concatenate([self.values, values.T], 1)
        all_indices = np.concatenate([self.indices, np.broadcast_to(indices, (c, len(indices)))], 1)
        all_positions = np.concatenate([self.positions, positions.transpose(1, 0, 2)], 1)
        order = np.lexsort((all_indices, -all_values), axis=1)[:, : self.k]
        self.values = np.take_along_axis(all_values, order, 1)
        self.indices = np.take_along_axis(all_indices, order, 1)
        self.positions = np.take_along_axis(all_positions, order[..., None], 1)


def tail_size(n: int, q: float) -> int:
    """Return how many top values of n give numpy's exact (linear) q-quantile, 0 < q < 1."""
    return min(n, n - math.floor(q * (n - 1)) + 1)


def quantile_from_top(top: np.ndarray, n: int, q: float) -> np.ndarray:
    """Return each row's q-quantile (numpy's linear rule) of n values from its descending
    top values (at least tail_size(n, q) of them)."""
    position = q * (n - 1)
    low = math.floor(position)
    rank = n - 1 - low  # rank from the top of sorted[low]
    below = top[:, rank]
    above = top[:, rank - 1] if rank > 0 else below
    return below + (position - low) * (above - below)


def p99_keep(samples: int) -> int:
    """Return how many top values per unit give numpy's exact 99th percentile of samples."""
    return tail_size(samples, 0.99)


def p99_from_top(top: np.ndarray, n: int) -> np.ndarray:
    """Return the 99th percentile (numpy's linear rule) from each row's descending top values."""
    return quantile_from_top(top, n, 0.99)


class RunningTail:
    """The ``size`` largest values of every channel over all positions seen (torch, float32):
    an exact high quantile per channel in size × channels floats, never the whole data."""

    CHUNK = 1 << 24  # at most this many values in one merge (64 MB of float32)

    def __init__(self, channels: int, size: int):
        self.size = size
        self.values = torch.full((channels, 0), -math.inf)
        self.count = 0

    def update(self, values: torch.Tensor) -> None:
        """Merge (C, N) values (every position of a batch, per channel): the batch's own top
        values first, then those with the kept ones."""
        values = values.detach().float().cpu()
        self.count += values.shape[1]
        rows = max(1, self.CHUNK // max(1, values.shape[1]))
        merged = []
        for start in range(0, values.shape[0], rows):
            batch = values[start : start + rows]
            best = torch.topk(batch, min(self.size, batch.shape[1]), dim=1, sorted=False).values
            both = torch.cat([self.values[start : start + rows], best], 1)
            keep = min(self.size, both.shape[1])
            merged.append(torch.topk(both, keep, dim=1, sorted=True).values)
        self.values = torch.cat(merged, 0)

    def quantile(self, q: float) -> np.ndarray:
        """Return each channel's exact q-quantile of every value seen."""
        return quantile_from_top(self.values.numpy(), self.count, q)


def unit_values(act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return each unit's channel-mean value (B, C) and its spatial argmax (B, C, 2)."""
    if act.dim() == 4:
        flat = act.flatten(2)
        arg = flat.argmax(-1)
        rows, cols = arg // act.shape[-1], arg % act.shape[-1]
        return flat.mean(-1), torch.stack([rows, cols], -1)
    values = act.mean(1) if act.dim() == 3 else act  # tokens: mean over tokens, no position
    return values, torch.full((*values.shape, 2), -1, device=act.device)
