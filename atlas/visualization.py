"""``atlas.visualize``: one objective, any composition, from a notebook, on the build engine."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from html import escape
from pathlib import Path

import cv2
import numpy as np
from torch import nn

from .bars import StepBar
from .engine.objectives import INPUT, Diversity, Objective
from .errors import AtlasError
from .images import encode_png
from .models.adapter import ModelAdapter
from .models.layers import catalogue
from .models.sources.common import warn_random_weights
from .pipeline.backends import Backend
from .pipeline.build import fit_canvases
from .pipeline.checks import check_device, check_precision
from .pipeline.compose import Context, as_objective
from .pipeline.jobs import Outcome
from .pipeline.plan import Task, make_task, token_layers
from .pipeline.runner import Progress, cache_sink, execute, keep_sink, make_jobs, memory_limit
from .pipeline.settle import settle
from .recipe import DIVERSITY_WEIGHT, check_keywords, render_settings
from .registry import Registry, load_registry
from .store.cache import Cache, default_cache_dir


@dataclass
class Visualization:
    """The pictures of one objective: ``images`` (B, H, W, C) in [0, 1], the objective
    ``final`` reached by each, and its ``curve`` during optimisation (points x B).

    With ``alpha`` the last channel of ``images`` is opacity.
    """

    images: np.ndarray
    final: np.ndarray
    curve: np.ndarray
    objective: str
    alpha: bool = False
    from_cache: bool = False

    def grid(self, columns: int | None = None, gap: int = 2) -> np.ndarray:
        """Return the pictures tiled in one (H, W, C) image."""
        n, h, w, c = self.images.shape
        columns = columns or min(n, 8)
        rows = -(-n // columns)
        out = np.ones(
            (rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap, c), np.float32
        )
        if self.alpha:
            out[..., -1] = 0.0
        for i, image in enumerate(self.images):
            r, col = divmod(i, columns)
            out[r * (h + gap) : r * (h + gap) + h, col * (w + gap) : col * (w + gap) + w] = image
        return out

    def png(self) -> bytes:
        """Return the pictures (one, or a grid of the batch) as PNG bytes."""
        image = self.images[0] if len(self.images) == 1 else self.grid()
        return encode_png(image, self.alpha)

    def save(self, path: str | Path) -> Path:
        """Write the picture (or a grid of the batch) to a PNG file and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.png())
        return path

    def _repr_png_(self) -> bytes:
        """Show the pictures in Jupyter, enlarged so small canvases are visible."""
        data = self.png()
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        scale = max(1, 256 // max(pixels.shape[:2]))
        if scale > 1:
            pixels = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        return cv2.imencode(".png", pixels)[1].tobytes()

    def _repr_html_(self) -> str:
        """Show the pictures with the objective and the values reached."""
        data = base64.b64encode(self._repr_png_()).decode()
        values = ", ".join(f"{v:.4g}" for v in self.final)
        return (
            f'<figure><img src="data:image/png;base64,{data}">'
            f"<figcaption><code>{escape(self.objective)}</code> reached {values}"
            "</figcaption></figure>"
        )


def _adapter(
    model: nn.Module | ModelAdapter | str,
    options: dict | None,
    weights: str | None,
    registry: Registry,
) -> ModelAdapter:
    """Return the adapter for a live module, an adapter or a source string."""
    from .models.live import as_adapter

    if isinstance(model, (nn.Module, ModelAdapter)):
        return as_adapter(model, options)
    if isinstance(model, str):
        adapter = registry.load_model(model, weights, **(options or {}))
        if weights is None:  # an explicit "none" asked for random weights
            warn_random_weights(model, adapter.weights_digest, "pass weights=")
        return adapter
    raise AtlasError(
        f"model must be an nn.Module, an adapter or a source string, not {type(model).__name__}"
    )


def _diversity_layer(objective: Objective, layer: str | None) -> str:
    """Return the layer whose activations a diversity set is pushed apart at."""
    if layer:
        return layer
    for _, term in objective.terms():
        layers = sorted(term.layers - {INPUT})
        if layers:
            return layers[0]
    raise AtlasError("diversity needs a layer: pass diversity_layer='...'")


def _label(value: Objective | str) -> str:
    return value if isinstance(value, str) else repr(value)


def visualize(
    model: nn.Module | ModelAdapter | str,
    objective: Objective | str,
    *,
    batch: int = 1,
    diversity: int = 0,
    diversity_weight: float = DIVERSITY_WEIGHT,
    diversity_layer: str | None = None,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    cache: bool = True,
    cache_dir: str | Path | None = None,
    options: dict | None = None,
    weights: str | None = None,
    registry: Registry | None = None,
    progress: bool | Progress = True,
    **render_keys,
) -> Visualization:
    """Optimise pictures that maximise objective (an expression string or an Objective).

    ``batch`` independent pictures, or with ``diversity=K`` a set of K pictures pushed apart
    (``batch`` sets of them). Render keywords are the recipe's ``[render]`` keys (size,
    steps, lr, param, transforms, regularizers, alpha, ...). Results go through the build
    cache unless ``cache=False`` or the objective has no spec (an unnamed callable); either
    way they run on the build's task runner (batches sized to memory, halved when a device
    runs out of it, NaN pictures retried at a lower rate). ``progress``: True for a bar that
    counts steps, False for none, or a callable that receives each Tick.
    """
    registry = registry or load_registry()
    adapter = _adapter(model, options, weights, registry)
    check_keywords(render_keys, "atlas.visualize()")
    settings = render_settings(render_keys, "atlas.visualize()")
    if settings.accentuate:
        raise AtlasError(
            "atlas.visualize(): accentuate starts each unit from its top dataset example, "
            "which a build with [dataset] finds; here give the image: seed_image='FILE'"
        )
    settings = settle(settings, adapter, registry, "atlas.visualize()", Path.cwd())
    fit_canvases(adapter, [settings], adapter.source)
    check_device(device)
    check_precision(precision)
    found = catalogue(adapter)
    context = Context(
        adapter.source, adapter.labels, {x.name: x for x in found if x.supported}, Path.cwd()
    )
    resolved = as_objective(objective, registry, context, "atlas.visualize()")
    if batch < 1 or (diversity and diversity < 2):
        raise AtlasError("atlas.visualize(): batch must be >= 1 and diversity >= 2 (or 0)")
    images = diversity or 1
    if diversity:
        layer = _diversity_layer(resolved, diversity_layer)
        resolved = resolved - diversity_weight * Diversity(layer)
    made = partial(make_task, patches=token_layers(context), order=tuple(context.layers))
    tasks = [
        made(adapter, resolved, settings, seed + b, f"picture {b}", images, "visualize")
        for b in range(batch)
    ]
    store = Cache(cache_dir or default_cache_dir()) if cache and resolved.spec else None
    missing = [t for t in tasks if store is None or not all(store.get(k) for k in t.keys)]
    outcomes = _run(adapter, missing, registry, (device, precision), store, progress)
    alpha = tasks[0].settings.alpha
    if store is None:
        return _from_outcomes(tasks, outcomes, _label(objective), alpha)
    return _from_cache(store, tasks, _label(objective), alpha, not missing)


def _run(
    adapter: ModelAdapter,
    tasks: Sequence[Task],
    registry: Registry,
    where: tuple[str, str],
    store: Cache | None,
    progress: bool | Progress,
) -> list[Outcome]:
    """Run tasks on the build's task runner in this process, on where's (device, precision);
    raise naming the first failure."""
    if not tasks:
        return []
    device, precision = where
    total = sum(t.images for t in tasks)
    root = str(store.root) if store else str(default_cache_dir())
    limit = memory_limit(adapter, total, device) if total > 1 else None  # nothing to cap
    jobs = make_jobs(tasks, adapter, root, device, precision, total, limit)
    sink = cache_sink(root) if store else keep_sink
    bar = StepBar(bool(progress)) if isinstance(progress, bool) else None
    try:
        outcomes = execute(jobs, Backend(), registry, sink, bar or progress, "atlas.visualize")
    finally:
        if bar:
            bar.close()
    failed = [o for o in outcomes if o.error]
    if failed:
        raise AtlasError(f"atlas.visualize(): {failed[0].name} failed: {failed[0].error}")
    return outcomes


def _from_outcomes(
    tasks: Sequence[Task], outcomes: Sequence[Outcome], text: str, alpha: bool
) -> Visualization:
    """Return the pictures the runner sent back, in the tasks' order (nothing stored)."""
    by_key = {item.key: item for o in outcomes for item in o.stored}
    items = [by_key[k] for t in tasks for k in t.keys]
    images = np.stack([np.load(io.BytesIO(i.array)).astype(np.float32) for i in items])
    return _visualization(images, [i.meta for i in items], text, alpha, False)


def _from_cache(
    store: Cache, tasks: Sequence[Task], text: str, alpha: bool, hit: bool
) -> Visualization:
    """Read every picture of the tasks from the cache."""
    entries = [store.get(k) for t in tasks for k in t.keys]
    if any(e is None for e in entries):
        raise AtlasError("atlas.visualize(): the cache lost a picture while it was read; run again")
    images = np.stack([e.image() for e in entries])
    return _visualization(images, [e.meta for e in entries], text, alpha, hit)


def _visualization(
    images: np.ndarray, metas: Sequence[dict], text: str, alpha: bool, hit: bool
) -> Visualization:
    final = np.array([m["objective_final"] for m in metas], np.float32)
    points = min(len(m["curve"]) for m in metas)
    curve = np.array([m["curve"][:points] for m in metas], np.float32).T
    return Visualization(images, final, curve, text, alpha, from_cache=hit)
