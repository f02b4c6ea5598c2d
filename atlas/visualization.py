"""``atlas.visualize``: one objective, any composition, from a notebook, on the build engine."""

from __future__ import annotations

import base64
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

import cv2
import numpy as np
from torch import nn
from tqdm import tqdm

from .adapter import ModelAdapter
from .cache import Cache, default_cache_dir
from .compose import Context, as_objective
from .devices import resolve_device
from .errors import AtlasError
from .execute import execute
from .images import encode_png
from .jobs import Job, curve_points
from .layers import catalogue
from .objectives import INPUT, Diversity, Objective, stack
from .pipeline import ProgressBar, check_device, check_precision, fit_canvases, settle
from .plan import Task, batches, make_task
from .plugins import Registry, load_registry
from .recipe import DIVERSITY_WEIGHT, check_keywords, render_settings
from .render import render
from .sources import load_model
from .sources.common import warn_random_weights


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
    from .api import as_adapter

    if isinstance(model, (nn.Module, ModelAdapter)):
        return as_adapter(model, options)
    if isinstance(model, str):
        adapter = load_model(registry, model, weights, **(options or {}))
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
    progress: bool = True,
    **render_keys,
) -> Visualization:
    """Optimise pictures that maximise objective (an expression string or an Objective).

    ``batch`` independent pictures, or with ``diversity=K`` a set of K pictures pushed apart
    (``batch`` sets of them). Render keywords are the recipe's ``[render]`` keys (size,
    steps, lr, param, transforms, regularizers, alpha, ...). Results go through the build
    cache unless ``cache=False`` or the objective has no spec (an unnamed callable).
    """
    registry = registry or load_registry()
    adapter = _adapter(model, options, weights, registry)
    check_keywords(render_keys, "atlas.visualize()")
    settings = settle(render_settings(render_keys, "atlas.visualize()"), adapter, registry, "")
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
    tasks = [
        make_task(adapter, resolved, settings, seed + b, f"picture {b}", images, "visualize")
        for b in range(batch)
    ]
    text = _label(objective)
    if not cache or resolved.spec is None:
        return _render_now(adapter, resolved, tasks, registry, (device, precision), text, progress)
    return _through_cache(adapter, tasks, registry, (device, precision), cache_dir, text, progress)


def _bar(total: int, show: bool) -> tqdm:
    return ProgressBar(
        total=total, desc="atlas.visualize", unit="img", file=sys.stderr, disable=not show
    )


def _render_now(
    adapter: ModelAdapter,
    objective: Objective,
    tasks: Sequence[Task],
    registry: Registry,
    where: tuple[str, str],
    text: str,
    progress: bool,
) -> Visualization:
    """Render without touching the cache, on where's (device, precision)."""
    settings = tasks[0].settings
    total = sum(t.images for t in tasks)
    with _bar(total, progress) as bar:
        result = render(
            adapter,
            stack([objective] * len(tasks), [t.images for t in tasks]),
            [s for t in tasks for s in t.seeds],
            settings,
            registry,
            resolve_device(where[0]),
            lambda _step: bar.update(total / settings.steps),
            where[1],
        )
    curve = np.stack([curve_points(result.curve[:, i]) for i in range(total)], 1)
    return Visualization(result.images, result.final, curve, text, settings.alpha)


def _through_cache(
    adapter: ModelAdapter,
    tasks: Sequence[Task],
    registry: Registry,
    where: tuple[str, str],
    cache_dir: str | Path | None,
    text: str,
    progress: bool,
) -> Visualization:
    """Compute what the cache lacks on where's (device, precision), then read every picture
    from the cache."""
    store = Cache(cache_dir or default_cache_dir())
    missing = [t for t in tasks if not all(store.get(k) for k in t.keys)]
    if missing:
        jobs = [Job(adapter, tuple(b), str(store.root), *where) for b in batches(missing, 64)]
        total = sum(t.images for t in missing)
        with _bar(total, progress) as bar:
            failed = [o for o in execute(jobs, registry=registry, progress=bar.update) if o.error]
        if failed:
            raise AtlasError(f"atlas.visualize(): {failed[0].name} failed: {failed[0].error}")
    entries = [store.get(k) for t in tasks for k in t.keys]
    if any(e is None for e in entries):
        raise AtlasError("atlas.visualize(): the cache lost a picture while it was read; run again")
    alpha = tasks[0].settings.alpha
    images = np.stack([e.image() for e in entries])
    final = np.array([e.meta["objective_final"] for e in entries], np.float32)
    points = min(len(e.meta["curve"]) for e in entries)
    curve = np.array([e.meta["curve"][:points] for e in entries], np.float32).T
    return Visualization(images, final, curve, text, alpha, from_cache=not missing)
