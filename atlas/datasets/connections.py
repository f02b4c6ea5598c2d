"""Connections between the units of two layers: how much each unit of a layer L is built
from each channel of an earlier layer P (the Circuits view, Olah et al., Distill 2020).

``data``: attribution on real images, the gradient of unit u's channel mean with respect to
P's activations times those activations, summed over positions and averaged over u's top
dataset examples. ``weights``: expanded weights, the same gradient through a copy of the
model whose ReLU, GELU and SiLU modules are the identity and whose max pooling is average
pooling (the linear map the weights alone define), summed over positions, from a probe
input. A full (units of L) x (channels of P) matrix is kept; the lists a page shows are cut
from it when the manifest is made.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..models.adapter import ModelAdapter
from ..models.layers import Probe
from ..models.tokens import seen
from .prepare import prepare

DATA, WEIGHTS = "data", "weights"
METHODS = (DATA, WEIGHTS)
LINEAR = (nn.ReLU, nn.GELU, nn.SiLU)  # swapped for the identity by the weights method
NONLINEAR = {  # functional calls that the weights method cannot swap, by name
    "relu", "relu_", "gelu", "silu", "sigmoid", "tanh", "softmax", "hardswish", "elu",
    "leaky_relu", "max_pool2d", "max_pool1d", "adaptive_max_pool2d", "mish", "relu6",
}  # fmt: skip


class NoPath(ValueError):
    """Two layers with no path from the first to the second in the forward pass."""


def unit_means(act: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """Return row i's unit units[i] averaged over space or tokens: (B,)."""
    rows = torch.arange(act.shape[0], device=act.device)
    if act.dim() == 4:
        return act[rows, units].flatten(1).mean(1)
    if act.dim() == 3:
        return act[rows, :, units].mean(1)
    return act[rows, units]


def channel_sums(x: torch.Tensor) -> torch.Tensor:
    """Return (B, C): x summed over its positions (space, or tokens)."""
    if x.dim() == 4:
        return x.sum((2, 3))
    if x.dim() == 3:
        return x.sum(1)
    return x


def linearised(adapter: ModelAdapter) -> ModelAdapter:
    """Return a copy of the model with ReLU, GELU and SiLU modules made the identity and
    max pooling made average pooling of the same kernel and stride."""
    module = copy.deepcopy(adapter.module)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LINEAR):
                setattr(parent, name, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                pool = nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode)
                setattr(parent, name, pool)
    return _copy(adapter, module)


def _copy(adapter: ModelAdapter, module: nn.Module) -> ModelAdapter:
    """Return the adapter around another module (ReLUs not in place: the gradient of a
    layer's output must survive what reads it)."""
    for child in module.modules():
        if isinstance(child, nn.ReLU):
            child.inplace = False
    out = copy.copy(adapter)
    out.module = module
    return out


class _Watch(TorchFunctionMode):
    """Record the functional non-linearities called between two layers' outputs."""

    def __init__(self):
        super().__init__()
        self.on, self.seen = False, set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if self.on and name in NONLINEAR:
            self.seen.add(name)
        return func(*args, **(kwargs or {}))


@dataclass
class Gradients:
    """One batch's gradients of units of L with respect to P, summed over positions."""

    grad: torch.Tensor  # (B, C_P): Σ ∂ unit / ∂ P
    attribution: torch.Tensor  # (B, C_P): Σ ∂ unit / ∂ P · P


def gradients(
    adapter: ModelAdapter,
    source: str,
    layer: str,
    images: torch.Tensor,
    units: torch.Tensor,
    watch: _Watch | None = None,
) -> Gradients:
    """Return, for each image, the gradient of its unit of layer (channel mean) with respect
    to source's activations; images are prepared, in [0, 1]."""
    kept: dict[str, torch.Tensor] = {}

    def keep(module, args, out):
        out.retain_grad()
        kept["source"] = out
        if watch is not None:
            watch.on = True

    modules = dict(adapter.module.named_modules())
    handle = modules[source].register_forward_hook(keep)
    try:
        x = adapter.input.normalize(images).requires_grad_(True)
        with torch.enable_grad(), Probe(adapter, [layer]) as probe:
            act = probe(x)[layer]
        if watch is not None:
            watch.on = False
        if "source" not in kept:
            raise NoPath(f"{source} does not run before {layer}")
        unit_means(act.float(), units).sum().backward()
    finally:
        handle.remove()
    grad = kept["source"].grad
    if grad is None:
        raise NoPath(f"{layer} does not depend on {source}")
    value = kept["source"].detach()
    grad, value = seen(adapter.tokens, grad), seen(adapter.tokens, value)  # patches only
    return Gradients(channel_sums(grad).float(), channel_sums(grad * value).float())


def grey(adapter: ModelAdapter, n: int, device="cpu") -> torch.Tensor:
    """Return n mid-grey images of the model's input size (the probe input)."""
    h, w = adapter.input.size
    return torch.full((n, adapter.input.channels, h, w), 0.5, device=device)


def check_path(adapter: ModelAdapter, source: str, layer: str, method: str) -> list[str]:
    """Raise NoPath unless layer depends on source; return the functional non-linearities
    on the path that the weights method cannot swap (names)."""
    if method == WEIGHTS:
        model = linearised(adapter)
    else:
        model = _copy(adapter, copy.deepcopy(adapter.module))
    watch = _Watch()
    with watch:
        gradients(model, source, layer, grey(adapter, 1), torch.zeros(1, dtype=torch.long), watch)
    return sorted(watch.seen)


def expanded_weights(
    adapter: ModelAdapter, source: str, layer: str, units: int, batch: int, device
) -> np.ndarray:
    """Return the (units, C_P) expanded weights from a mid-grey probe input."""
    model = linearised(adapter)
    model.module.to(device)
    rows = []
    for start in range(0, units, batch):
        chosen = torch.arange(start, min(units, start + batch), device=device)
        images = grey(adapter, len(chosen), device)
        rows.append(gradients(model, source, layer, images, chosen).grad.cpu())
    return torch.cat(rows).numpy()


def attributions(
    adapter: ModelAdapter,
    dataset,
    source: str,
    layer: str,
    examples: np.ndarray,
    batch: int,
    device,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Return the (units, C_P) attribution of each unit to each channel of source, averaged
    over its top examples (examples: (units, k) image indices, -1 where there is none)."""
    model = _copy(adapter, copy.deepcopy(adapter.module))
    model.module.to(device)
    pairs = [(u, int(i)) for u, row in enumerate(examples) for i in row if i >= 0]
    total = np.zeros((examples.shape[0], 0), np.float64)
    counts = np.zeros(examples.shape[0])
    for chunk in _chunks(pairs, batch):
        units = torch.tensor([u for u, _ in chunk], device=device)
        images = np.stack([prepare(dataset[i][0], adapter) for _, i in chunk])
        found = gradients(model, source, layer, torch.from_numpy(images).to(device), units)
        values = found.attribution.cpu().double().numpy()
        if total.shape[1] == 0:
            total = np.zeros((examples.shape[0], values.shape[1]))
        np.add.at(total, [u for u, _ in chunk], values)
        np.add.at(counts, [u for u, _ in chunk], 1)
        if progress:
            progress(len(chunk))
    return (total / np.maximum(counts, 1)[:, None]).astype(np.float32)


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def normalised(matrix: np.ndarray) -> np.ndarray:
    """Return each row divided by its largest |weight| (the strongest input is ±1)."""
    scale = np.abs(matrix).max(1, keepdims=True)
    return np.divide(matrix, scale, out=np.zeros_like(matrix), where=scale > 0)


def strongest(row: np.ndarray, top: int) -> list[tuple[int, float]]:
    """Return the top excitatory then the top inhibitory (index, weight) of a row, strongest
    first within each; zero weights never."""
    order = np.argsort(-row, kind="stable")
    positive = [(int(i), float(row[i])) for i in order[:top] if row[i] > 0]
    negative = [(int(i), float(row[i])) for i in order[::-1][:top] if row[i] < 0]
    return positive + negative
