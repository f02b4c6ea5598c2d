"""Objectives as values with algebra; each returns one score per batch element."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from numbers import Real

import numpy as np
import torch

from ..constants import constant
from ..models.layers import INPUT  # the key under which objectives see the picture itself
from .masks import Mask, resolve_mask

Acts = Mapping[str, torch.Tensor]


class Objective:
    """A differentiable score per image; combine with ``+``, ``-``, ``*``, ``/`` and ``sum``."""

    def __call__(self, acts: Acts) -> torch.Tensor:
        raise NotImplementedError

    @property
    def layers(self) -> frozenset[str]:
        """Return the layers whose activations this objective reads."""
        raise NotImplementedError

    @property
    def spec(self) -> dict | None:
        """Return the canonical plain-data description used in cache keys (None: uncachable)."""
        raise NotImplementedError

    def terms(self) -> list[tuple[float, Objective]]:
        """Return this objective as a flat list of (weight, objective) terms."""
        return [(1.0, self)]

    @classmethod
    def merge(cls, parts: Sequence[Objective], rows: Sequence[int]) -> Objective | None:
        """Return one vectorised objective for a batch whose rows go to parts in turn, or
        None if these parts cannot be merged (then each scores its own rows)."""
        return None

    def __add__(self, other: Objective | Real) -> Objective:
        if isinstance(other, Real):
            return self if other == 0 else NotImplemented
        if not isinstance(other, Objective):
            return NotImplemented
        return Sum(self.terms() + other.terms())

    __radd__ = __add__

    def __sub__(self, other: Objective) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return self + (-1.0) * other

    def __neg__(self) -> Objective:
        return (-1.0) * self

    def __mul__(self, weight: Real) -> Objective:
        if not isinstance(weight, Real) or isinstance(weight, bool):
            return NotImplemented
        return Sum([(float(weight) * w, term) for w, term in self.terms()])

    __rmul__ = __mul__

    def __truediv__(self, divisor: Real) -> Objective:
        if not isinstance(divisor, Real) or isinstance(divisor, bool):
            return NotImplemented
        return self * (1.0 / float(divisor))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec})"


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
    def spec(self) -> dict | None:
        specs = [t.spec for _, t in self._terms]
        if any(s is None for s in specs):
            return None
        return {
            "type": "sum",
            "terms": [
                {"weight": w, "term": s} for (w, _), s in zip(self._terms, specs, strict=True)
            ],
        }

    @classmethod
    def merge(cls, parts: Sequence[Objective], rows: Sequence[int]) -> Objective | None:
        weights = [w for w, _ in parts[0].terms()]
        if not all(isinstance(p, Sum) and [w for w, _ in p.terms()] == weights for p in parts):
            return None
        columns = zip(*(p.terms() for p in parts), strict=True)
        return Sum(
            (w, stack([t for _, t in column], rows))
            for w, column in zip(weights, columns, strict=True)
        )


def stack(parts: Sequence[Objective], rows: Sequence[int] | None = None) -> Objective:
    """Return one objective for a batch: the first rows[0] images are scored by parts[0],
    the next rows[1] by parts[1], and so on (one image each by default)."""
    rows = list(rows or [1] * len(parts))
    if len(parts) == 1 and rows[0] == 1:
        return parts[0]
    kind = type(parts[0])
    # a subclass that does not define its own merge would be merged into its base class
    if all(type(p) is kind for p in parts) and "merge" in vars(kind):
        merged = kind.merge(parts, rows)
        if merged is not None:
            return merged
    return PerImage(parts, rows)


class PerImage(Objective):
    """Each part scores its own consecutive rows of the batch (the general, slower case)."""

    def __init__(self, parts: Sequence[Objective], rows: Sequence[int]):
        self.parts, self.rows = list(parts), list(rows)

    def __call__(self, acts: Acts) -> torch.Tensor:
        scores, start = [], 0
        for part, n in zip(self.parts, self.rows, strict=True):
            scores.append(part({k: v[start : start + n] for k, v in acts.items()}))
            start += n
        return torch.cat(
            [
                s.reshape(-1).expand(n) if s.numel() == 1 else s
                for s, n in zip(scores, self.rows, strict=True)
            ]
        )

    @property
    def layers(self) -> frozenset[str]:
        return frozenset().union(*(p.layers for p in self.parts))

    @property
    def spec(self) -> dict | None:
        specs = [p.spec for p in self.parts]
        return None if None in specs else {"type": "per_image", "parts": specs, "rows": self.rows}


def _per_image_channels(channels: int | Sequence[int], batch: int, device) -> torch.Tensor:
    """Return a (batch,) index tensor: one channel per image, or one for all."""
    if isinstance(channels, int):
        return torch.full((batch,), channels, dtype=torch.long, device=device)
    index = constant(list(channels), device, torch.long)
    if index.numel() != batch:
        raise ValueError(f"objective names {index.numel()} channels for a batch of {batch}")
    return index


def _gather(act: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Pick channel index[i] of image i: NCHW gives (B, H, W), NTD (B, T), NC (B,)."""
    rows = torch.arange(act.shape[0], device=act.device)
    if act.dim() == 3:
        return act[rows, :, index]
    return act[rows, index]


def _masked_mean(values: torch.Tensor, mask: Mask | None) -> torch.Tensor:
    """Mean over space of (B, H, W) values, weighted by mask (zero weight outside it)."""
    if values.dim() != 3:
        return values if values.dim() == 1 else values.flatten(1).mean(1)
    if mask is None:
        return values.flatten(1).mean(1)
    h, w = values.shape[-2:]
    weights = constant(mask.at(h, w), values.device, values.dtype)
    return (values * weights).flatten(1).sum(1) / weights.sum().clamp_min(1e-8)


def _as_channels(channels: int | str | Sequence[int | str]) -> int | str | list:
    """Return an int, a label (resolved later against the model's labels) or a list."""
    if isinstance(channels, (int, np.integer)):
        return int(channels)
    if isinstance(channels, str):
        return channels
    return [c if isinstance(c, str) else int(c) for c in channels]


def _repeat(channels: int | str | list, n: int) -> list:
    return [channels] * n if isinstance(channels, (int, str)) else list(channels)


class Channel(Objective):
    """Mean activation of one channel per image (image i maximises channel c_i)."""

    def __init__(self, layer: str, channels: int | Sequence[int], mask: Mask | None = None):
        self.layer = layer
        self.channels = _as_channels(channels)
        self.mask = resolve_mask(mask, None, f"mask of channel({layer!r})")

    def __call__(self, acts: Acts) -> torch.Tensor:
        act = acts[self.layer]
        picked = _gather(act, _per_image_channels(self.channels, act.shape[0], act.device))
        return _masked_mean(picked, self.mask)

    @property
    def layers(self) -> frozenset[str]:
        return frozenset({self.layer})

    @property
    def spec(self) -> dict:
        spec = {"type": "channel", "layer": self.layer, "channel": self.channels}
        if self.mask is not None:
            spec["mask"] = self.mask.spec
        return spec

    @classmethod
    def merge(cls, parts: Sequence[Objective], rows: Sequence[int]) -> Objective | None:
        first = parts[0]
        if any(p.layer != first.layer or p.mask != first.mask for p in parts):
            return None
        if any(
            not isinstance(p.channels, (int, str)) and len(p.channels) != n
            for p, n in zip(parts, rows, strict=True)
        ):
            return None
        channels = [c for p, n in zip(parts, rows, strict=True) for c in _repeat(p.channels, n)]
        return cls(first.layer, channels, first.mask)


class Neuron(Objective):
    """One channel at one spatial position (the centre unless x, y are given)."""

    def __init__(self, layer: str, channels: int | Sequence[int], x=None, y=None):
        self.layer, self.x, self.y = layer, x, y
        self.channels = _as_channels(channels)

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

    @classmethod
    def merge(cls, parts: Sequence[Objective], rows: Sequence[int]) -> Objective | None:
        first = parts[0]
        same = all((p.layer, p.x, p.y) == (first.layer, first.x, first.y) for p in parts)
        if not same or not all(isinstance(p.channels, int) for p in parts):
            return None
        channels = [p.channels for p, n in zip(parts, rows, strict=True) for _ in range(n)]
        return cls(first.layer, channels, first.x, first.y)


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

    @classmethod
    def merge(cls, parts: Sequence[Objective], rows: Sequence[int]) -> Objective | None:
        return parts[0] if all(p.layer == parts[0].layer for p in parts) else None


def _channels_last(act: torch.Tensor) -> torch.Tensor:
    """Return activations as (B, positions, channels): NCHW, NTD and NC alike."""
    if act.dim() == 4:
        return act.flatten(2).transpose(1, 2)
    if act.dim() == 3:
        return act
    return act[:, None, :]


def _rounded(vector: np.ndarray) -> list:
    """Return a vector (or a matrix's rows) as plain numbers, rounded for cache keys."""
    if vector.ndim == 2:
        return [_rounded(row) for row in vector]
    return [round(float(v), 6) for v in vector]


Position = int | str | None  # a place on a layer: an index, "centre", or None (all)


def _place(value: Position, size: int) -> int:
    """Return a position's index on a side of size (``"centre"``: the middle)."""
    return size // 2 if value == "centre" else int(value)


class Direction(Objective):
    """Project activations onto a direction in channel space, at every position or at one
    (``x, y``: indices or ``"centre"``).

    With ``cossim_pow`` > 0 the dot product is multiplied by the cosine similarity to that
    power (lucid's ``direction_cossim``), which favours pictures that point that way rather
    than merely activating strongly. ``vector`` may hold one direction per image (a matrix):
    a batch of directions is one product.
    """

    def __init__(
        self,
        layer: str,
        vector: Sequence[float] | np.ndarray,
        cossim_pow: float = 0.0,
        mask: Mask | None = None,
        x: Position = None,
        y: Position = None,
    ):
        self.layer = layer
        vectors = np.asarray(vector, dtype=np.float32)
        self.vector = vectors if vectors.ndim == 2 else vectors.reshape(-1)
        norms = np.linalg.norm(self.vector, axis=-1, keepdims=True)
        if not np.isfinite(self.vector).all() or not (norms > 0).all():
            raise ValueError("a direction needs a finite, non-zero vector")
        self.unit = self.vector / norms
        self.cossim_pow = float(cossim_pow)
        self.mask = resolve_mask(mask, None, f"mask of direction({layer!r})")
        places = [v for v in (x, y) if v is not None]
        if len(places) == 1 or any(v != "centre" and not isinstance(v, int) for v in places):
            raise ValueError('a direction\'s x and y are both None, indices or "centre"')
        self.x, self.y = x, y

    def __call__(self, acts: Acts) -> torch.Tensor:
        act = acts[self.layer]
        features = _channels_last(act)
        if features.shape[-1] != self.vector.shape[-1]:
            raise ValueError(
                f"direction has {self.vector.shape[-1]} values but layer {self.layer!r} has "
                f"{features.shape[-1]} channels"
            )
        if self.x is not None and act.dim() == 4:
            h, w = act.shape[2:]
            features = act[:, :, _place(self.y, h), _place(self.x, w)][:, None, :]
        unit = constant(self.unit, act.device, act.dtype)
        dot = features @ unit if unit.dim() == 1 else (features * unit[:, None, :]).sum(-1)
        if self.cossim_pow:
            cos = dot / features.norm(dim=-1).clamp_min(1e-6)
            dot = dot * cos.clamp_min(0.1) ** self.cossim_pow
        if act.dim() == 4 and self.x is None:
            return _masked_mean(dot.view(act.shape[0], *act.shape[2:]), self.mask)
        return dot.mean(1)

    @property
    def layers(self) -> frozenset[str]:
        return frozenset({self.layer})

    @property
    def spec(self) -> dict:
        spec = {
            "type": "direction",
            "layer": self.layer,
            "vector": _rounded(self.vector),
            "cossim_pow": self.cossim_pow,
        }
        if self.mask is not None:
            spec["mask"] = self.mask.spec
        if self.x is not None:
            spec["x"], spec["y"] = self.x, self.y
        return spec

    @classmethod
    def merge(cls, parts: Sequence[Objective], rows: Sequence[int]) -> Objective | None:
        first = parts[0]
        same = (first.layer, first.cossim_pow, first.mask, first.x, first.y)
        if any((p.layer, p.cossim_pow, p.mask, p.x, p.y) != same for p in parts):
            return None
        if any(p.vector.ndim != 1 for p in parts):
            return None
        vectors = np.repeat(np.stack([p.vector for p in parts]), list(rows), axis=0)
        return cls(first.layer, vectors, first.cossim_pow, first.mask, first.x, first.y)


class Diversity(Objective):
    """How alike each picture is to the others of its group (lucid's diversity term).

    Per image, the Gram matrix of the layer's activations, normalised to unit Frobenius
    norm; the score of image i is the sum of its inner products with the other images of
    its group, divided by the group size. Subtract it, weighted, to push a set apart:
    ``channel(...) - 100 * diversity(layer)``. ``group`` splits a batch into consecutive
    sets of that size; by default the whole batch is one set.
    """

    def __init__(self, layer: str, group: int | None = None):
        self.layer, self.group = layer, group

    def __call__(self, acts: Acts) -> torch.Tensor:
        features = _channels_last(acts[self.layer]).float()
        gram = features.transpose(1, 2) @ features
        gram = gram.flatten(1)
        gram = gram / gram.norm(dim=1, keepdim=True).clamp_min(1e-8)
        batch = gram.shape[0]
        size = self.group or batch
        if batch % size:
            raise ValueError(f"diversity groups of {size} do not divide a batch of {batch}")
        sets = gram.view(batch // size, size, -1)
        similarity = sets @ sets.transpose(1, 2)
        similarity = similarity - torch.diag_embed(torch.diagonal(similarity, dim1=1, dim2=2))
        return (similarity.sum(2) / size).reshape(batch)

    @property
    def layers(self) -> frozenset[str]:
        return frozenset({self.layer})

    @property
    def spec(self) -> dict:
        return {"type": "diversity", "layer": self.layer}

    @classmethod
    def merge(cls, parts: Sequence[Objective], rows: Sequence[int]) -> Objective | None:
        if any(
            p.layer != parts[0].layer or p.group not in (None, n)
            for p, n in zip(parts, rows, strict=True)
        ):
            return None
        return cls(parts[0].layer, rows[0]) if len(set(rows)) == 1 else None


class Penalty(Objective):
    """A regularizer as an objective: its penalty of the picture itself, per image."""

    def __init__(
        self,
        name: str,
        penalty: Callable[[torch.Tensor], torch.Tensor],
        options: Mapping | None = None,
    ):
        self.name, self.penalty, self.options = name, penalty, dict(options or {})

    def __call__(self, acts: Acts) -> torch.Tensor:
        return self.penalty(acts[INPUT])

    @property
    def layers(self) -> frozenset[str]:
        return frozenset({INPUT})

    @property
    def spec(self) -> dict:
        return {
            "type": "regularizer",
            "name": self.name,
            "options": dict(sorted(self.options.items())),
        }

    @classmethod
    def merge(cls, parts: Sequence[Objective], rows: Sequence[int]) -> Objective | None:
        return parts[0] if all(p.spec == parts[0].spec for p in parts) else None


class Custom(Objective):
    """A user's callable: takes the activations ``{layer: tensor}`` (and ``'input'``, the
    picture), returns one score per image. Cached only when it has a name."""

    def __init__(
        self, fn: Callable[[Acts], torch.Tensor], layers: Iterable[str], name: str | None = None
    ):
        self.fn, self.name = fn, name
        self._layers = frozenset(layers)

    def __call__(self, acts: Acts) -> torch.Tensor:
        score = self.fn(acts)
        batch = next(iter(acts.values())).shape[0]
        if not isinstance(score, torch.Tensor) or score.shape not in ((batch,), ()):
            shape = tuple(score.shape) if isinstance(score, torch.Tensor) else type(score).__name__
            raise ValueError(
                f"objective {self.name or self.fn!r} must return {batch} scores, not {shape}"
            )
        return score.expand(batch)

    @property
    def layers(self) -> frozenset[str]:
        return self._layers

    @property
    def spec(self) -> dict | None:
        if self.name is None:
            return None
        return {"type": "custom", "name": self.name, "layers": sorted(self._layers)}


def channel(layer: str, channel: int | Sequence[int], mask: Mask | None = None) -> Objective:
    """Maximise the mean of a channel (one per image when channel is a sequence)."""
    return Channel(layer, channel, mask)


def neuron(
    layer: str, channel: int | Sequence[int], x: int | None = None, y: int | None = None
) -> Objective:
    """Maximise one channel at one position, the centre by default."""
    return Neuron(layer, channel, x, y)


def layer(layer: str) -> Objective:
    """Maximise the energy of a whole layer, as DeepDream does."""
    return LayerEnergy(layer)


def direction(
    layer: str,
    vector: Sequence[float],
    cossim_pow: float = 0.0,
    mask: Mask | None = None,
    x: Position = None,
    y: Position = None,
) -> Objective:
    """Maximise the projection of the layer's activations onto vector, everywhere or at
    one position (x, y: indices, or ``"centre"``)."""
    return Direction(layer, vector, cossim_pow, mask, x, y)


def diversity(layer: str) -> Objective:
    """Score how alike the pictures of a batch are at layer (subtract it to diversify)."""
    return Diversity(layer)


def objective(
    fn: Callable[[Acts], torch.Tensor], layers: Iterable[str], name: str | None = None
) -> Objective:
    """Wrap a callable of the activations as an objective that composes with the others."""
    if not callable(fn):
        raise TypeError(f"atlas.objective() takes a callable of the activations, not {fn!r}")
    if isinstance(layers, str):
        layers = [layers]
    return Custom(fn, layers, name)
