"""The Python API: build an atlas from a recipe file, or straight from an ``nn.Module`` with
the same keys a recipe takes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from torch import nn

from .bars import Bars
from .engine.objectives import Objective
from .errors import AtlasError
from .models.adapter import ModelAdapter
from .models.live import adapt, as_adapter, module_digest
from .models.sources.common import warn_random_weights
from .pipeline.build import BuildResult, run_build
from .pipeline.runner import Progress
from .recipe import Recipe, check_keywords, load_recipe, parse_recipe

__all__ = ["AtlasMap", "activation_atlas", "adapt", "as_adapter", "build", "module_digest"]


def build(
    recipe: str | Path | Recipe | None = None,
    *,
    model: nn.Module | ModelAdapter | str | None = None,
    layers: Sequence[str] | None = None,
    weights: str | None = None,
    out_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    title: str | None = None,
    batch_size: int = 64,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    max_channels: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    show_progress: bool = True,
    progress: Progress | None = None,
    options: dict | None = None,
    dataset: dict | None = None,
    pictures: Sequence[dict] | None = None,
    connections: dict | None = None,
    activation_atlas: dict | None = None,
    judge: str | dict | None = None,
    **render,
) -> BuildResult:
    """Build an atlas from a recipe file, or from a model plus layer names.

    ``model`` may be a live ``nn.Module`` (``options`` then holds adapt()'s keywords:
    input_size, channels, mean, std, labels), an adapter, or a source string such as
    ``"torchvision/resnet18"`` (``weights`` and ``options`` as a recipe's model.weights and
    model.options; without weights, torchvision and timm models are untrained). ``render``
    keywords are the recipe's ``[render]`` keys, with the values a recipe takes
    (``size=128``, ``transforms=False``, ``regularizers={"tv": 0.05}``, ...); ``dataset`` a
    dict of ``[dataset]`` keys; ``pictures`` a list of ``[[pictures]]`` dicts, whose
    ``objective`` is an expression string or an Objective; ``connections`` and
    ``activation_atlas`` dicts of their tables' keys (with a map, layers may be empty);
    ``judge`` another model's source (or a dict of ``[judge]`` keys) that judges the class
    pictures.
    ``progress`` receives each Tick instead of the bars ``show_progress`` draws.
    """
    if model is None:
        parsed = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
        result = _run(parsed, cache_dir, out_dir, None, show_progress, progress)
        if parsed.weights is None:
            _warn_untrained(result, "set model.weights")
        return result
    if not layers and not activation_atlas:
        raise AtlasError("atlas.build(model=...) needs layers=[...], e.g. layers=['output']")
    check_keywords(render, "atlas.build()")
    adapter = None
    if isinstance(model, (nn.Module, ModelAdapter)):
        if weights is not None:
            raise AtlasError("weights= goes with a source string; a live module has its own")
        adapter = as_adapter(model, options)
    source = adapter.source if adapter else str(model)
    run = {"batch_size": batch_size, "jobs": jobs, "device": device, "precision": precision}
    run["backend"] = "dask" if scheduler else backend
    run.update({k: v for k, v in (("scheduler", scheduler), ("max_channels", max_channels)) if v})
    data = {
        "title": title or source,
        "layers": list(layers or []),
        "model": {"source": source, **({"weights": weights} if weights else {})},
        "render": render,
        "run": run,
    }
    if options and not adapter:
        data["model"]["options"] = dict(options)
    if dataset is not None:
        data["dataset"] = dict(dataset)
    if connections is not None:
        data["connections"] = dict(connections)
    if activation_atlas is not None:
        data["activation_atlas"] = dict(activation_atlas)
    if judge is not None:
        data["judge"] = {"model": judge} if isinstance(judge, str) else dict(judge)
    name = source.replace("/", "-").replace(":", "-")
    parsed = parse_recipe(data, "atlas.build()", name, objectives=_objectives(pictures, data))
    result = _run(parsed, cache_dir, out_dir, adapter, show_progress, progress)
    if weights is None:
        _warn_untrained(result, "pass weights=")
    return result


def _objectives(pictures: Sequence[dict] | None, data: dict) -> dict[str, Objective]:
    """Put the pictures into the recipe data; return the objectives given as values (by
    picture name), which the recipe parser cannot read from text."""
    if pictures is None:
        return {}
    tables, values = [], {}
    for table in pictures:
        if not isinstance(table, dict):
            raise AtlasError("atlas.build(): pictures= is a list of dicts with [[pictures]] keys")
        table = dict(table)
        if isinstance(table.get("objective"), Objective):
            if table["objective"].spec is None:
                raise AtlasError(
                    f"atlas.build(): picture {table.get('name')!r}: its objective has no spec "
                    "to cache it under; give atlas.objective(...) a name="
                )
            values[str(table.get("name"))] = table.pop("objective")
        tables.append(table)
    data["pictures"] = tables
    return values


def _run(
    recipe: Recipe,
    cache_dir: str | Path | None,
    out_dir: str | Path | None,
    adapter: ModelAdapter | None,
    show: bool,
    progress: Progress | None,
) -> BuildResult:
    """Run the build with the caller's progress callback, or bars on stderr."""
    if progress is not None:
        return run_build(recipe, cache_dir, out_dir, adapter=adapter, progress=progress)
    with Bars(show) as bars:
        return run_build(recipe, cache_dir, out_dir, adapter=adapter, progress=bars)


def _warn_untrained(result: BuildResult, fix: str) -> None:
    """Warn the caller of build() if its model ran with random weights."""
    model = result.manifest["model"]
    warn_random_weights(model["source"], model["digest"], fix)


@dataclass(frozen=True)
class AtlasMap:
    """One layer's activation atlas as built: its cells (the manifest's records: x, y,
    count, class, image, patches, units) and where its page and pictures are."""

    layer: str
    grid: int
    layout: dict
    cells: list[dict]
    site: Path
    result: BuildResult

    @property
    def page(self) -> Path:
        """Return the map's HTML page."""
        return self.site / self.result.manifest["activation_atlas"][self.layer]["page"]

    def picture(self, index: int) -> np.ndarray:
        """Return cell index's picture as (H, W, 3) floats in [0, 1]."""
        path = self.site / self.cells[index]["image"]
        return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def activation_atlas(
    model: nn.Module | ModelAdapter | str,
    layer: str,
    *,
    dataset: str | dict,
    points: int = 100_000,
    grid: int = 20,
    n_neighbors: int = 50,
    min_dist: float = 0.05,
    steps: int | None = None,
    **keys,
) -> AtlasMap:
    """Sample a layer's activations on a data set, lay them out with UMAP, draw each grid
    cell and write the map's pages; return the map. ``dataset`` is a source or a dict of
    ``[dataset]`` keys; the other keywords are build()'s (out_dir, cache_dir, weights,
    options, size, ...). Everything is cached: a second call computes nothing."""
    table = {"layers": [layer], "points": points, "grid": grid}
    table.update(n_neighbors=n_neighbors, min_dist=min_dist)
    if steps is not None:
        table["steps"] = steps
    data = {"source": dataset} if isinstance(dataset, str) else dict(dataset)
    result = build(model=model, layers=[], dataset=data, activation_atlas=table, **keys)
    found = (result.manifest.get("activation_atlas") or {}).get(layer)
    if found is None:
        raise AtlasError(f"no activation atlas of {layer!r} was made: see the notes above")
    site = result.index.parent
    return AtlasMap(layer, found["grid"], found["layout"], found["cells"], site, result)
