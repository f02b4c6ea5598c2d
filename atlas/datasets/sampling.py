"""Activation samples for an activation atlas (Carter et al., Distill 2019): per image of the
dataset pass, random spatial positions away from the edges, their activation vectors and,
when the model's output has classes, each class's attribution there, ``h · ∇_h mean(logit_c)``
(forward mode: every class at once along h at the point; or backward, one pass a class).

One position per image as in the article; more when the pass reads fewer images than
points are asked for. Positions are drawn per image from (seed, image index), so they do not
depend on batching or order. The vectors fill an array of exactly ``points`` rows (the
memory is known before the pass: points × channels × 4 bytes); the worker stores the
finding in the cache itself, so nothing of that size travels back to the client.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .analyses import Analysis

NAME = "activation_atlas"
MAX_CLASSES = 1000  # class attributions kept per point (points x classes floats)
BACKWARD_AT = 2  # backward passes (one a class) while classes <= this x forward passes


def border(size: int) -> int:
    """Return how many rows (or columns) at each edge are left out of sampling."""
    return 1 if size > 2 else 0


def positions(seed: int, index: int, h: int, w: int, count: int) -> np.ndarray:
    """Return count distinct (y, x) positions of an h × w map away from its edges, drawn
    from (seed, index)."""
    by, bx = border(h), border(w)
    inner_h, inner_w = h - 2 * by, w - 2 * bx
    rng = np.random.default_rng([seed, index])
    flat = rng.choice(inner_h * inner_w, size=min(count, inner_h * inner_w), replace=False)
    return np.stack([flat // inner_w + by, flat % inner_w + bx], 1).astype(np.int32)


def class_means(output: torch.Tensor) -> torch.Tensor:
    """Return (B, K): each class's logit, averaged over pixels for a per-pixel output."""
    return output.flatten(2).mean(2) if output.dim() > 2 else output


class _LayerSamples:
    """One layer's sampled vectors, filled in place up to points rows."""

    def __init__(self, channels: int, points: int, per_image: int):
        self.vectors = np.zeros((points, channels), np.float32)
        self.images = np.zeros(points, np.int64)
        self.places = np.zeros((points, 2), np.int32)
        self.attributions: np.ndarray | None = None
        self.per_image, self.filled, self.shape = per_image, 0, (0, 0)

    def room(self) -> int:
        return len(self.vectors) - self.filled


class MapSamples(Analysis):
    """Sample activation vectors of a layer for its activation atlas."""

    name = NAME
    version = "1"

    def __init__(self, points: int, seed: int = 0, classes: int = 0):
        super().__init__(points=points, seed=seed, classes=classes)
        self.points, self.seed, self.classes = points, seed, classes
        self.needs_derivative = classes > 0
        self.layers: dict[str, _LayerSamples] = {}

    def describe(self) -> str:
        colour = ", class attributions" if self.classes else ""
        return f"activation atlas: {self.points} sampled activations{colour}"

    def begin(self, layer: str, channels: int, samples: int) -> None:
        per_image = max(1, math.ceil(self.points / max(1, samples)))
        self.layers[layer] = _LayerSamples(channels, self.points, per_image)

    def update(
        self,
        layer: str,
        act: torch.Tensor,
        indices: np.ndarray,
        labels: Sequence[object],
        pass_index: int,
        derivatives=None,
    ) -> None:
        state = self.layers[layer]
        if act.dim() != 4:
            raise ValueError(f"an activation atlas maps NCHW feature maps; {layer!r} is not one")
        if state.room() <= 0:
            return
        h, w = act.shape[2:]
        state.shape = (h, w)
        rows, places, ranks = [], [], []
        for row, index in enumerate(indices):
            found = positions(self.seed, int(index), h, w, state.per_image)
            rows += [row] * len(found)
            ranks += range(len(found))
            places.append(found)
        take = min(len(rows), state.room())
        rows_t = torch.tensor(rows[:take], device=act.device)
        where = torch.from_numpy(np.concatenate(places)[:take]).long().to(act.device)
        picked = act[rows_t, :, where[:, 0], where[:, 1]]
        span = slice(state.filled, state.filled + take)
        state.vectors[span] = picked.detach().float().cpu().numpy()
        state.images[span] = indices[np.asarray(rows[:take], dtype=np.int64)]
        state.places[span] = where.cpu().numpy()
        if self.classes and derivatives is not None:
            found = self._attribute(layer, act, derivatives, rows_t, where, ranks[:take])
            if state.attributions is None:
                state.attributions = np.zeros((len(state.vectors), self.classes), np.float32)
            state.attributions[span] = found
        state.filled += take

    def _attribute(self, layer, act, derivatives, rows, where, ranks) -> np.ndarray:
        """Return each sampled point's class attributions a_c = h · ∇_h mean(logit_c), by
        whichever needs fewer passes: forward mode, the derivative of every class along h
        at the points of one rank within their images (one pass per rank: one for the
        article's one point an image), or backward mode, one pass per class."""
        ranks = np.asarray(ranks)
        found = np.zeros((len(ranks), self.classes), np.float32)
        if self.classes <= BACKWARD_AT * len(np.unique(ranks)):
            live, grads = derivatives.gradients(layer, class_means)
            here = live[rows, :, where[:, 0], where[:, 1]]
            for c, grad in enumerate(grads):
                found[:, c] = (here * grad[rows, :, where[:, 0], where[:, 1]]).sum(1).cpu()
            return found
        for rank in np.unique(ranks):
            mine = torch.from_numpy(np.flatnonzero(ranks == rank)).to(act.device)
            r, y, x = rows[mine], where[mine, 0], where[mine, 1]
            tangent = torch.zeros_like(act)
            tangent[r, :, y, x] = act[r, :, y, x]
            means = class_means(derivatives.along(layer, tangent))
            found[mine.cpu().numpy()] = means[r].cpu().numpy()
        return found

    def result(self, layer: str) -> tuple[dict, dict[str, np.ndarray]]:
        state = self.layers[layer]
        n = state.filled
        arrays = {
            "vectors": state.vectors[:n],
            "images": state.images[:n],
            "positions": state.places[:n],
        }
        if state.attributions is not None:
            arrays["attributions"] = state.attributions[:n]
        meta = {"points": n, "channels": state.vectors.shape[1], "shape": list(state.shape)}
        return meta, arrays
