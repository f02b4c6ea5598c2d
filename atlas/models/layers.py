"""The layer catalogue of a model, layer selection by glob, and the truncated forward."""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import torch

from ..errors import LayerError, ModelError, unknown
from .adapter import ModelAdapter
from .tokens import TokenGrid, seen

OUTPUT = "output"
INPUT = "input"  # not a layer: objectives find the picture itself under this name


@dataclass(frozen=True)
class LayerInfo:
    """One selectable (or refused) layer: its name, output shape and channel count."""

    name: str
    kind: str
    shape: tuple[int, ...]
    channels: int
    supported: bool = True
    reason: str = ""
    tokens: str = ""  # a token layer seen as its patch grid: how its tokens lie

    @property
    def meaning(self) -> str:
        """Say what one channel of this layer is."""
        if self.tokens:
            return "token feature (mean over the patch tokens)"
        if len(self.shape) == 3:
            return "feature map channel (mean over space)"
        if len(self.shape) == 2:
            return "token feature (mean over all tokens: the patch grid is unknown)"
        return "unit"

    @property
    def gridless(self) -> bool:
        """Return True for a token layer whose patch grid is unknown (no positions)."""
        return len(self.shape) == 2

    def as_dict(self) -> dict:
        """Return plain data for ``atlas layers --json`` and manifests."""
        out = {"name": self.name, "type": self.kind, "shape": list(self.shape)}
        out.update(channels=self.channels, supported=self.supported)
        if self.tokens:
            out["tokens"] = self.tokens
        if self.supported:
            out["channel_meaning"] = self.meaning
        else:
            out["reason"] = self.reason
        return out


class _StopForward(Exception):
    """Raised by a hook once every wanted activation is captured."""


def _describe(name: str, kind: str, value: object, tokens: TokenGrid | None = None) -> LayerInfo:
    """Describe one module's output as a layer, refusing shapes with no clear channel (a
    token layer of a known grid is described as its patch map)."""
    if not isinstance(value, torch.Tensor):
        reason = f"its output is a {type(value).__name__}, not a tensor"
        return LayerInfo(name, kind, (), 0, False, reason)
    shape = tuple(value.shape[1:])
    if tokens is not None and tokens.fits(shape):
        d = shape[1]
        return LayerInfo(name, kind, (d, *tokens.grid), d, tokens=tokens.describe(shape[0]))
    if tokens is not None and len(shape) == 3 and tokens.fits(shape[1:]):
        reason = "its output is attention heads × tokens × head features, not channels"
        return LayerInfo(name, kind, shape, 0, False, f"{reason}; pick the attention block")
    if len(shape) in (1, 3):
        return LayerInfo(name, kind, shape, shape[0])
    if len(shape) == 2:
        return LayerInfo(name, kind, shape, shape[1])
    return LayerInfo(name, kind, shape, 0, False, f"its output has {value.dim()} dimensions")


def dummy_input(adapter: ModelAdapter, device: torch.device | str = "cpu") -> torch.Tensor:
    """Return a mid-grey input of the adapter's size, normalised for the model."""
    h, w = adapter.input.size
    grey = torch.full((1, adapter.input.channels, h, w), 0.5, device=device)
    return adapter.input.normalize(grey)


SCRIPTED = "it is compiled TorchScript, whose inner layers hooks cannot observe; use 'output'"


def _dry_forward(adapter: ModelAdapter, device: torch.device | str) -> object:
    """Run the model once on a grey input; a failure names the input it was given."""
    x = dummy_input(adapter, device)
    try:
        with torch.no_grad():
            return adapter.module.to(device)(x)
    except Exception as exc:
        shape = "×".join(map(str, x.shape[1:]))
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{adapter.source} fails on an input of {shape}: {message}; if it expects "
            "another size or channel count, set model.options.input_size or channels"
        ) from None


def catalogue(adapter: ModelAdapter, device: torch.device | str = "cpu") -> list[LayerInfo]:
    """List every named module in execution order with its output shape, then ``output``."""
    if isinstance(adapter.module, torch.jit.ScriptModule):
        return _scripted_catalogue(adapter, device)
    seen: dict[str, LayerInfo] = {}
    hooks = []

    def make_hook(name: str):
        def hook(module, args, out):
            if name not in seen:
                seen[name] = _describe(name, type(module).__name__, out, adapter.tokens)

        return hook

    try:
        for name, module in adapter.module.named_modules():
            if name:
                hooks.append(module.register_forward_hook(make_hook(name)))
        raw = _dry_forward(adapter, device)
    finally:
        for handle in hooks:
            handle.remove()
    output = _describe(OUTPUT, "output", adapter.model_output(raw))
    return [*seen.values(), output]


def _scripted_catalogue(adapter: ModelAdapter, device: torch.device | str) -> list[LayerInfo]:
    """List a TorchScript model's modules as refused and its output as the one layer."""
    inner = [
        LayerInfo(name, module.original_name, (), 0, False, SCRIPTED)
        for name, module in adapter.module.named_modules()
        if name
    ]
    raw = _dry_forward(adapter, device)
    return [*inner, _describe(OUTPUT, "output", adapter.model_output(raw))]


def _match(pattern: str, layers: Sequence[LayerInfo]) -> list[LayerInfo]:
    """Return the layers whose name matches pattern (fnmatch; ``*`` crosses dots)."""
    return [layer for layer in layers if fnmatch.fnmatchcase(layer.name, pattern)]


def _candidates(pattern: str, layers: Sequence[LayerInfo]) -> list[str]:
    """Return names to suggest for pattern: those as deep as it, if any is close."""
    names = [layer.name for layer in layers]
    same_depth = [n for n in names if n.count(".") == pattern.count(".")]
    return same_depth if difflib.get_close_matches(pattern, same_depth, cutoff=0.5) else names


def select(layers: Sequence[LayerInfo], patterns: Iterable[str], model: str) -> list[LayerInfo]:
    """Resolve patterns to supported layers in execution order; raise naming a bad one."""
    chosen: dict[str, LayerInfo] = {}
    for pattern in patterns:
        matches = _match(pattern, layers)
        refused = [m for m in matches if not m.supported]
        usable = [m for m in matches if m.supported]
        if not matches:
            hint = f"run `atlas layers {model}` to list them"
            raise LayerError(
                unknown(f"layer of {model}", pattern, _candidates(pattern, layers), hint)
            )
        if not usable:
            raise LayerError(
                f"layer {refused[0].name!r} of {model} cannot be visualized: {refused[0].reason}"
            )
        chosen.update((m.name, m) for m in usable)
    order = {layer.name: i for i, layer in enumerate(layers)}
    return sorted(chosen.values(), key=lambda layer: order[layer.name])


class Probe:
    """Capture named activations during forwards, stopping after the last one needed.

    Use as a context manager: the hooks exist only inside the ``with`` block.
    """

    def __init__(self, adapter: ModelAdapter, names: Iterable[str]):
        self.adapter = adapter
        wanted = set(names)
        self.need_output = OUTPUT in wanted
        self.targets = wanted - {OUTPUT, INPUT}
        self._acts: dict[str, torch.Tensor] = {}
        self._hooks: list = []
        self._paused = False

    def _hook(self, name: str):
        tokens = self.adapter.tokens

        def hook(module, args, out):
            if self._paused:
                return
            self._acts.setdefault(name, seen(tokens, out))  # token layers as patch maps
            if not self.need_output and self.targets.issubset(self._acts):
                raise _StopForward

        return hook

    def __enter__(self) -> Probe:
        modules = dict(self.adapter.module.named_modules())
        for name in sorted(self.targets):
            self._hooks.append(modules[name].register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Let the module run whole, its hooks silent (another forward inside the block)."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the wanted activations for input x."""
        self._acts = {}
        if not self.targets and not self.need_output:
            return self._acts  # the objective reads only the picture itself
        try:
            raw = self.adapter.module(x)
            if self.need_output:
                self._acts[OUTPUT] = self.adapter.model_output(raw)
        except _StopForward:
            pass
        return self._acts


def forward_layers(
    adapter: ModelAdapter, x: torch.Tensor, names: Iterable[str]
) -> dict[str, torch.Tensor]:
    """Run the model on x once and return the named activations."""
    with Probe(adapter, names) as probe:
        return probe(x)


PROBE_MARGIN = 24  # lucid's pad of 12 on each side: the canvas a transformed picture has


def needs_own_size(
    adapter: ModelAdapter,
    canvases: Iterable[tuple[int, int]] = (),
    device: torch.device | str = "cpu",
) -> bool:
    """Return True if the model runs at its input size but not on a padded canvas of that
    size or of the canvases given (a Linear head over flattened features, a transformer's
    fixed patch grid): then every canvas must be resized to the model's own size."""
    if adapter.input.fixed_size:
        return False
    for h, w in {tuple(adapter.input.size), *map(tuple, canvases)}:
        size = (1, adapter.input.channels, h + PROBE_MARGIN, w + PROBE_MARGIN)
        grey = torch.full(size, 0.5, device=device)
        try:
            with torch.no_grad():
                adapter.module.to(device)(adapter.input.normalize(grey))
        except Exception:  # any failure here means: not at this size
            return True
    return False


def fit_input_size(adapter: ModelAdapter, canvases: Iterable[tuple[int, int]] = ()) -> bool:
    """Mark the adapter fixed-size if it cannot run on the canvases (padded as the standard
    transforms pad them) that will reach it; return True if it changed."""
    if not needs_own_size(adapter, canvases):
        return False
    adapter.input = replace(adapter.input, fixed_size=True)
    return True
