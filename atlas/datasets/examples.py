"""The dataset pass: what every unit responds to in real images.

One streaming pass over a data set's samples, batched, without gradients, the forward
truncated after the deepest selected layer (an analysis that needs the output's
derivatives, as the activation atlas's class colouring does, runs its own passes). For every
unit it keeps a running top-k of its channel-mean activation (the measure pictures
optimise) with the image index and the position of its spatial maximum, and its max, mean
and 99th percentile on the data.
State per unit is k values plus the top 1% needed for an exact p99, never the samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD

from ..models.adapter import ModelAdapter
from ..models.frozen import run_copy
from ..models.layers import OUTPUT, Probe, dummy_input
from ..models.tokens import seen
from ..store.findings import Finding, LayerExamples, LayerFindings
from . import Dataset
from .analyses import Analysis, AnalysisSpec, make
from .labels import PIXEL, label_kind
from .prepare import prepare, prepare_labels
from .stats import RunningTopK, p99_from_top, p99_keep, unit_values


class _LayerState:
    """Running statistics of one layer during the pass."""

    def __init__(self, channels: int, k: int, samples: int):
        self.top = RunningTopK(channels, k)
        self.p99 = RunningTopK(channels, min(samples, p99_keep(samples)))
        self.max = np.full(channels, -np.inf)
        self.total = np.zeros(channels)
        self.count = 0
        self.grid: tuple[int, int] | None = None

    def update(self, act: torch.Tensor, indices: np.ndarray) -> None:
        values, positions = unit_values(act)
        self.grid = tuple(act.shape[-2:]) if act.dim() == 4 else None
        v = values.cpu().numpy().astype(np.float32)
        p = positions.cpu().numpy().astype(np.int32)
        self.top.update(v, indices, p)
        self.p99.update(v, indices, p)
        self.max = np.maximum(self.max, v.max(0))
        self.total += v.sum(0, dtype=np.float64)
        self.count += len(v)

    def result(self) -> LayerExamples:
        n = self.count
        return LayerExamples(
            self.top.values,
            self.top.indices,
            self.top.positions,
            self.max.astype(np.float32),
            (self.total / max(n, 1)).astype(np.float32),
            p99_from_top(self.p99.values, n).astype(np.float32),
            n,
            self.grid,
        )


def sample_order(dataset: Dataset, samples: int, seed: int) -> np.ndarray:
    """Return the indices the pass looks at: a seeded permutation, samples long."""
    n = len(dataset)
    if n == 0:
        return np.zeros(0, np.int64)
    return np.random.default_rng(seed).permutation(n)[:samples]


def _batches(
    dataset: Dataset, order: np.ndarray, adapter: ModelAdapter, size: int, skipped: list[int]
) -> Iterator[tuple[np.ndarray, np.ndarray, list]]:
    """Yield (indices, images, labels) batches of prepared images; unreadable ones are
    skipped (and listed in skipped)."""
    indices, images, labels = [], [], []
    for index in order:
        image, label = dataset[int(index)]
        if image is None:
            skipped.append(int(index))
            continue
        indices.append(int(index))
        images.append(prepare(image, adapter))
        labels.append(prepare_labels(label, adapter) if label_kind(label) == PIXEL else label)
        if len(images) == size:
            yield np.array(indices), np.stack(images), labels
            indices, images, labels = [], [], []
    if images:
        yield np.array(indices), np.stack(images), labels


Subscribers = Sequence[tuple[Analysis, Sequence[str]]]  # each analysis and its layers


def run_pass(
    adapter: ModelAdapter,
    dataset: Dataset,
    layers: Sequence[str],
    samples: int,
    top_k: int,
    seed: int = 0,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    progress: Callable[[int], None] | None = None,
    analyses: Subscribers = (),
) -> tuple[dict[str, LayerExamples], list[int]]:
    """Stream samples of the data set through the model; return each of layers' findings
    and the indices of images that could not be read. Each subscribed analysis sees its
    layers' activations of every batch, with the images' labels, in each of its passes."""
    device = torch.device(device)
    adapter.module.to(device)
    watched = sorted({*layers, *(name for _, names in analyses for name in names)})
    adapter = run_copy(adapter, watched, torch.float32, device)  # folded: same values, faster
    order = sample_order(dataset, samples, seed)
    states: dict[str, _LayerState] = {}
    skipped: list[int] = []
    passes = max([1, *(a.passes for a, _ in analyses)])
    kept: list | None = [] if passes > 1 and _small(order, adapter) else None
    derived = any(a.needs_derivative for a, _ in analyses)
    with Probe(adapter, watched) as probe, torch.no_grad():
        for pass_index in range(passes):
            reading = [(a, names) for a, names in analyses if a.passes > pass_index]
            batches = _batches(dataset, order, adapter, batch_size, [] if pass_index else skipped)
            if pass_index and kept is not None:
                batches = kept  # read once, kept for the other passes
            for indices, images, labels in batches:
                if pass_index == 0 and kept is not None:
                    kept.append((indices, images, labels))
                x = adapter.input.normalize(torch.from_numpy(images).to(device))
                acts = {name: act.float() for name, act in probe(x).items()}
                if pass_index == 0:
                    _update_states(states, acts, layers, indices, top_k, len(order))
                derive = OutputDerivatives(adapter, x, probe) if derived else None
                _update_analyses(reading, acts, indices, labels, pass_index, len(order), derive)
                if progress:
                    progress(len(indices))
    return {name: state.result() for name, state in states.items()}, skipped


KEEP_BYTES = 256 << 20  # prepared images up to this size are kept between passes


def _small(order: np.ndarray, adapter: ModelAdapter) -> bool:
    """Return True if the prepared samples fit in KEEP_BYTES (then they are read once)."""
    h, w = adapter.input.size
    return len(order) * adapter.input.channels * h * w * 4 <= KEEP_BYTES


def _update_states(states, acts, layers, indices, top_k: int, samples: int) -> None:
    """Feed one batch to each layer's running statistics (made on first sight)."""
    for name in layers:
        act = acts[name]
        if name not in states:
            states[name] = _LayerState(unit_values(act)[0].shape[1], top_k, samples)
        states[name].update(act, indices)


class OutputDerivatives:
    """The derivatives of the model's output for one batch with respect to a layer's
    activations, by another whole forward (the pass's probe silent): forward mode along a
    tangent (every output at once), or backward mode per output column."""

    def __init__(self, adapter: ModelAdapter, x: torch.Tensor, probe: Probe):
        self.adapter, self.x, self.probe = adapter, x, probe

    def _run(self, layer: str, hook, x: torch.Tensor) -> torch.Tensor:
        module = dict(self.adapter.module.named_modules())[layer]
        handle = module.register_forward_hook(hook)
        try:
            return self.adapter.model_output(self.adapter.module(x))
        finally:
            handle.remove()

    def along(self, layer: str, tangent: torch.Tensor) -> torch.Tensor:
        """Return the output's derivative along tangent added to layer's output."""
        with fwAD.dual_level(), self.probe.paused():
            dual = lambda m, a, out: fwAD.make_dual(out, self._raw(tangent, out))  # noqa: E731
            out = self._run(layer, dual, self.x)
            return fwAD.unpack_dual(out).tangent.float()

    def _raw(self, tangent: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Return a tangent of the layer as seen (a token layer's patch map) in the shape of
        its raw output."""
        tokens = self.adapter.tokens
        if tokens is not None and tokens.fits(out.shape[1:]):
            tangent = tokens.as_tokens(tangent, out.shape[1])
        return tangent.to(out.dtype)

    def _seen(self, out: torch.Tensor) -> torch.Tensor:
        """Return a layer's raw output as readers see it (a token layer as its patch map)."""
        return seen(self.adapter.tokens, out)

    def gradients(self, layer: str, columns) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Return layer's activations and, per column of columns(output) (B, K), the
        gradient of its sum with respect to them."""
        kept: dict[str, torch.Tensor] = {}
        with torch.enable_grad(), self.probe.paused():
            keep = lambda m, a, out: kept.setdefault("act", out)  # noqa: E731
            out = self._run(layer, keep, self.x.detach().requires_grad_(True))
            values = columns(out)
            act = kept["act"]
            grads = [
                self._seen(torch.autograd.grad(values[:, c].sum(), act, retain_graph=True)[0])
                for c in range(values.shape[1])
            ]
        return self._seen(act.detach()), grads


def _update_analyses(
    reading: Subscribers, acts, indices, labels, pass_index, samples, derive=None
) -> None:
    """Show one batch to each analysis reading this pass (begun on first sight); those that
    need it get derive, the output's derivatives with respect to their layer."""
    for analysis, names in reading:
        for name in names:
            act = acts[name]
            if pass_index == 0 and name not in analysis.begun:
                analysis.begun.add(name)
                analysis.begin(name, unit_values(act)[0].shape[1], samples)
            if analysis.needs_derivative and derive is not None:
                analysis.update(name, act, indices, labels, pass_index, derivatives=derive)
            else:
                analysis.update(name, act, indices, labels, pass_index)


def receptive_field(adapter: ModelAdapter, layer: str) -> tuple[int, int]:
    """Measure the input region that one central position of layer depends on (h, w).

    The gradient footprint of the position's activations (summed over channels) on a
    random input: robust to branches, padding and dilation that formulas get wrong.
    """
    size = tuple(adapter.input.size)
    if layer == OUTPUT:
        return size
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(dummy_input(adapter).shape, generator=generator)
    x = adapter.input.normalize(noise).requires_grad_(True)
    with Probe(adapter, [layer]) as probe:
        act = probe(x)[layer]
    if act.dim() != 4:
        return size
    h, w = act.shape[-2:]
    act[0, :, h // 2, w // 2].abs().sum().backward()
    footprint = x.grad[0].abs().sum(0) > 0
    rows, cols = torch.nonzero(footprint.any(1)), torch.nonzero(footprint.any(0))
    if not len(rows):
        return size
    return (int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1))


def crop_box(
    position: Sequence[int], grid: tuple[int, int] | None, field: tuple[int, int], size
) -> tuple[int, int, int, int]:
    """Return (top, left, height, width) of the field-sized crop centred on a grid cell."""
    h, w = size
    if grid is None or position[0] < 0:
        return 0, 0, h, w
    fh, fw = min(field[0], h), min(field[1], w)
    cy = (position[0] + 0.5) * h / grid[0]
    cx = (position[1] + 0.5) * w / grid[1]
    top = min(max(round(cy - fh / 2), 0), h - fh)
    left = min(max(round(cx - fw / 2), 0), w - fw)
    return int(top), int(left), fh, fw


OUTLINE = (1.0, 0.85, 0.0)  # a token layer's best patch is outlined in yellow


def outlined(crop: np.ndarray, position, grid, size, origin) -> np.ndarray:
    """Return a crop (H, W, C) with the patch at position of the grid outlined: a token
    layer's example is the whole field its token sees, the patch its own place in it."""
    if position[0] < 0 or crop.shape[-1] != 3:
        return crop
    ph, pw = size[0] / grid[0], size[1] / grid[1]
    top = round(position[0] * ph) - origin[0]
    left = round(position[1] * pw) - origin[1]
    bottom = min(round((position[0] + 1) * ph) - origin[0], crop.shape[0]) - 1
    right = min(round((position[1] + 1) * pw) - origin[1], crop.shape[1]) - 1
    top, left = max(top, 0), max(left, 0)
    out = crop.copy()
    colour = np.asarray(OUTLINE, out.dtype)
    out[top, left : right + 1] = out[bottom, left : right + 1] = colour
    out[top : bottom + 1, left] = out[top : bottom + 1, right] = colour
    return out


def make_crops(
    adapter: ModelAdapter,
    dataset: Dataset,
    layer: str,
    found: LayerExamples,
) -> tuple[dict[tuple[int, int], np.ndarray], tuple[int, int]]:
    """Cut each example of each unit out of its (prepared) image around the unit's maximum."""
    field = receptive_field(adapter, layer)
    size = tuple(adapter.input.size)
    grid = adapter.tokens.grid if adapter.tokens else None
    patch = (size[0] / grid[0], size[1] / grid[1]) if grid else (0, 0)
    tokens = found.grid == grid and (field[0] > patch[0] or field[1] > patch[1])
    prepared: dict[int, np.ndarray] = {}
    crops = {}
    for c in range(found.values.shape[0]):
        for rank in range(found.values.shape[1]):
            if not np.isfinite(found.values[c, rank]):
                continue
            index = int(found.indices[c, rank])
            if index not in prepared:
                prepared[index] = prepare(dataset[index][0], adapter).transpose(1, 2, 0)
            top, left, h, w = crop_box(found.positions[c, rank], found.grid, field, size)
            crop = prepared[index][top : top + h, left : left + w]
            if tokens:
                crop = outlined(crop, found.positions[c, rank], found.grid, size, (top, left))
            crops[(c, rank)] = crop
    return crops, field


def find(
    adapter: ModelAdapter,
    dataset: Dataset,
    layers: dict[str, str],
    samples: int,
    top_k: int,
    seed: int,
    batch_size: int,
    device: torch.device | str,
    progress: Callable[[int], None] | None = None,
    analyses: Sequence[tuple[AnalysisSpec, dict[str, str]]] = (),
) -> list[LayerFindings | Finding]:
    """Run the pass: the examples of layers ({layer: cache key}, every unit's crops cut)
    and each analysis's finding for its layers ({layer: cache key})."""
    start = time.perf_counter()
    made = [(make(spec), keys) for spec, keys in analyses]
    found, skipped = run_pass(
        adapter,
        dataset,
        list(layers),
        samples,
        top_k,
        seed,
        batch_size,
        device,
        progress,
        [(analysis, list(keys)) for analysis, keys in made],
    )
    seconds = time.perf_counter() - start
    paths = getattr(dataset, "paths", None)
    unreadable = [str(paths[i]) if paths else str(i) for i in skipped]
    findings: list[LayerFindings | Finding] = []
    for layer, key in layers.items():
        crops, field = make_crops(adapter, dataset, layer, found[layer])
        extra = {
            "skipped": unreadable,
            "field": list(field),
            "seconds": round(seconds, 3),
            "model": adapter.identity(),
        }
        findings.append(LayerFindings(key, layer, found[layer], crops, extra))
    for analysis, keys in made:
        for layer, key in keys.items():
            meta, arrays = analysis.result(layer)
            findings.append(Finding(key, analysis.name, layer, meta, arrays, adapter.identity()))
    return findings
