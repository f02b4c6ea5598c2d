"""The activation atlas in a build (``[activation_atlas]``): the dataset pass samples each
map layer's activations (an analysis, cached by the data it reads); after the pass UMAP lays
them out (cached by the samples and the UMAP settings); the grid's cells follow from the
layout in milliseconds, and each kept cell is a picture task like a unit's, keyed by its
whitened vector. A rebuild computes nothing; a new grid runs no UMAP and draws only the
cells whose vector is new."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from ..datasets.analyses import AnalysisSpec
from ..datasets.examples import receptive_field
from ..datasets.sampling import MAX_CLASSES, NAME
from ..engine.objectives import Direction
from ..errors import RecipeError
from ..maps.cells import Cell, grid_cells
from ..maps.layout import EPOCHS, layout, umap_class
from ..maps.whitening import whitened, whitening
from ..models.adapter import ModelAdapter
from ..models.layers import OUTPUT, LayerInfo
from ..recipe import MapSettings, Recipe
from ..store.cache import Cache, digest
from ..store.findings import AnalysisStore, Finding

LAYOUT = "activation_atlas_layout"  # the analysis store's folder for layouts
CELLS = "activation_atlas_cells"  # the analysis store's folder for a grid's cells
MAX_SAMPLE_BYTES = 4 << 30  # the sampled vectors of one layer, in memory while sampling
COSSIM_POW = 2.0  # lucid's activation atlas: dot · max(0.1, cossim)²
VERSION = "3"  # of the layout: bump when what it computes changes
CELLS_VERSION = "4"  # of the stored cells (4: with their patches' images and positions)


@dataclass
class MapLayer:
    """One layer's map: its samples' and layout's keys, and once laid out its cells and
    their picture tasks."""

    layer: LayerInfo
    samples_key: str
    layout_key: str
    classes: tuple[str, ...] = ()
    laid_out: bool = False
    cells: list[Cell] = field(default_factory=list)
    tasks: list = field(default_factory=list)  # one Task per cell, in the cells' order
    field_size: tuple[int, int] = (0, 0)  # the receptive field: the patches' size
    unsaved: Finding | None = None  # cells cut while planning, stored by the build
    cells_key: str = ""  # the stored cells of the recipe's grid, once laid out
    patches: tuple[np.ndarray, np.ndarray] | None = None  # per cell: image indices, positions

    @property
    def name(self) -> str:
        return self.layer.name


@dataclass
class MapsPlan:
    """Every map of a build."""

    settings: MapSettings
    layers: list[MapLayer]

    @property
    def tasks(self) -> list:
        """Return every cell's picture task (maps not laid out yet have none)."""
        return [t for m in self.layers for t in m.tasks]

    def all_keys(self) -> set[str]:
        """Return the samples', layouts', cells' and cell pictures' cache keys."""
        keys = {k for m in self.layers for k in (m.samples_key, m.layout_key, m.cells_key)}
        return (keys - {""}) | {k for t in self.tasks for k in t.keys}

    def summary(self, cached: set[str]) -> dict:
        """Return plain data for ``--dry-run --json``: each map cached or to compute."""
        out = {}
        for m in self.layers:
            done = sum(t.key in cached for t in m.tasks)
            out[m.name] = {
                "grid": self.settings.grid,
                "layout": self.settings.layout(),
                "laid_out": m.laid_out,
                "cells": len(m.cells) if m.laid_out else None,
                "cells_cached": done,
                "cells_to_compute": len(m.tasks) - done if m.laid_out else None,
                "cached": m.laid_out and done == len(m.tasks),
            }
        return out


def map_layers(recipe: Recipe, found: list[LayerInfo], select) -> list[LayerInfo]:
    """Return the layers ``[activation_atlas]`` names, checked to be feature maps."""
    if recipe.activation_atlas is None:
        return []
    if recipe.dataset is None:
        raise RecipeError(
            f"{recipe.where}: [activation_atlas] needs a [dataset] table: the activations it "
            "maps are read from the data set's images"
        )
    settings = recipe.activation_atlas
    chosen = select(found, list(settings.layers), recipe.model)
    for layer in chosen:
        size = settings.points * layer.channels * 4
        if size > MAX_SAMPLE_BYTES:
            raise RecipeError(
                f"{recipe.where}: key 'activation_atlas.points': {settings.points} activations "
                f"of {layer.name!r} ({layer.channels} channels) take {size / 2**30:.1f} GiB; "
                f"at most {MAX_SAMPLE_BYTES / 2**30:.0f} GiB: ask for fewer points"
            )
        if len(layer.shape) != 3:
            raise RecipeError(
                f"{recipe.where}: activation_atlas.layers: {layer.name!r} gives "
                f"{list(layer.shape)}, not a feature map (channels × height × width); "
                "name a convolutional layer"
            )
    return chosen


def patch_size(adapter: ModelAdapter, layer: str) -> tuple[int, int]:
    """Return the size of a map's real patches: the layer's receptive field in the input."""
    field_h, field_w = receptive_field(adapter, layer)
    h, w = adapter.input.size
    return min(field_h, h), min(field_w, w)


def output_classes(adapter: ModelAdapter) -> tuple[str, ...]:
    """Return the output's class names for class colouring (none above MAX_CLASSES: the
    attributions keep points × classes floats)."""
    names = tuple(adapter.labels.get(OUTPUT, ()))
    return names if 0 < len(names) <= MAX_CLASSES else ()


def sampling_spec(settings: MapSettings, classes: int) -> AnalysisSpec:
    """Return the dataset pass's sampling analysis for the maps."""
    pairs = (("classes", classes), ("points", settings.points), ("seed", settings.seed))
    return AnalysisSpec(NAME, pairs)


def layout_key(samples_key: str, settings: MapSettings) -> str:
    """Return a layout's key: its samples and the UMAP settings (not the grid)."""
    fixed = {"epochs": EPOCHS, "clip": [1, 99]}
    return digest({"samples": samples_key, "layout": settings.layout(), **fixed, "v": VERSION})


def plan_maps(
    recipe: Recipe,
    adapter: ModelAdapter,
    layers: list[LayerInfo],
    samples_keys: dict[str, str],
    cache: Cache,
    make_task: Callable,
) -> MapsPlan | None:
    """Key each map; where its layout is stored, cut its cells and plan their pictures."""
    settings = recipe.activation_atlas
    if settings is None:
        return None
    classes = output_classes(adapter)
    planned = MapsPlan(settings, [])
    for layer in layers:
        key = samples_keys[layer.name]
        mapped = MapLayer(layer, key, layout_key(key, settings), classes)
        mapped.field_size = patch_size(adapter, layer.name)
        planned.layers.append(mapped)
        _cut(mapped, recipe, adapter, cache, make_task)
    return planned


def _cells(mapped: MapLayer, grid: int, store: AnalysisStore) -> tuple[list[Cell], np.ndarray]:
    """Return a laid-out map's cells on a grid and its whitening matrix, from the store or
    cut now from the samples (the build stores them: a rebuild reads no samples)."""
    key = digest({"layout": mapped.layout_key, "grid": grid, "v": CELLS_VERSION})
    mapped.cells_key = key
    found = store.get(CELLS, key)
    if found is None:
        coords = store.get(LAYOUT, mapped.layout_key).arrays["coords"]
        samples = store.get(NAME, mapped.samples_key).arrays
        attributions = samples.get("attributions") if mapped.classes else None
        cells = grid_cells(coords, samples["vectors"], grid, attributions)
        arrays = {"whitening": whitening(samples["vectors"]).astype(np.float32)}
        arrays.update(cells_arrays(cells, samples["vectors"].shape[1]))
        arrays["patch_images"] = samples["images"][arrays["nearest"]]
        arrays["patch_positions"] = samples["positions"][arrays["nearest"]]
        found = Finding(key, CELLS, mapped.name, {"grid": grid}, arrays, {})
        mapped.unsaved = found
    mapped.patches = (found.arrays["patch_images"], found.arrays["patch_positions"])
    return cells_from(found.arrays), found.arrays["whitening"]


def cells_arrays(cells: list[Cell], channels: int) -> dict[str, np.ndarray]:
    """Return cells as arrays (to store)."""
    n = len(cells)
    return {
        "places": np.array([(c.column, c.row) for c in cells], np.int32).reshape(n, 2),
        "centres": np.array([(c.x, c.y) for c in cells], np.float32).reshape(n, 2),
        "counts": np.array([c.count for c in cells], np.int64),
        "means": np.array([c.mean for c in cells], np.float32).reshape(n, channels),
        "nearest": np.array([c.nearest for c in cells], np.int64).reshape(n, -1),
        "classes": np.array([-1 if c.klass is None else c.klass for c in cells], np.int64),
    }


def cells_from(arrays: dict[str, np.ndarray]) -> list[Cell]:
    """Return stored cells."""
    cells = []
    for i, (column, row) in enumerate(arrays["places"].tolist()):
        x, y = arrays["centres"][i].tolist()
        klass = None if arrays["classes"][i] < 0 else int(arrays["classes"][i])
        nearest = tuple(int(v) for v in arrays["nearest"][i])
        count = int(arrays["counts"][i])
        cells.append(
            Cell(
                column, row, x, y, count, arrays["means"][i], nearest, None if klass < 0 else klass
            )
        )
    return cells


def cell_vector(matrix: np.ndarray, cell: Cell) -> np.ndarray:
    """Return the direction a cell's picture draws: its whitened mean, of unit length."""
    vector = whitened(matrix, cell.mean)
    return vector / (np.linalg.norm(vector) or 1.0)


def _cut(mapped: MapLayer, recipe: Recipe, adapter, cache: Cache, make_task) -> None:
    """Cut a laid-out map into cells with their tasks (nothing when not laid out yet)."""
    store = AnalysisStore(cache.root)
    if store.get(LAYOUT, mapped.layout_key) is None:
        return
    mapped.cells, matrix = _cells(mapped, recipe.activation_atlas.grid, store)
    mapped.laid_out = True
    settings = replace(recipe.render, seed_image=None, accentuate=False)  # cells start from noise
    if recipe.activation_atlas.steps:
        settings = replace(settings, steps=recipe.activation_atlas.steps)
    mapped.tasks = [
        make_task(
            adapter,
            Direction(mapped.name, cell_vector(matrix, cell), COSSIM_POW, x="centre", y="centre"),
            settings,
            recipe.seed,
            f"{mapped.name} map cell ({cell.column}, {cell.row})",
            group=f"map:{mapped.name}",
            meta={"map": mapped.name, "cell": i},
        )
        for i, cell in enumerate(mapped.cells)
    ]


def lay_out(maps: MapsPlan, recipe: Recipe, adapter, cache: Cache, make_task, note=None) -> int:
    """Run UMAP for every map whose samples are stored but layout is not, store it, cut
    and store the cells; return how many maps were laid out."""
    store, done = AnalysisStore(cache.root), 0
    for mapped in maps.layers:
        if mapped.laid_out:
            continue
        samples = store.get(NAME, mapped.samples_key)
        if samples is None:
            sys.stderr.write(f"note: no sampled activations of {mapped.name}: no map of it\n")
            continue
        settings = maps.settings
        umap_class()  # a missing extra is one line, before any work
        if note:
            note(f"UMAP of {len(samples.arrays['vectors'])} activations of {mapped.name}")
        coords = layout(
            samples.arrays["vectors"], settings.n_neighbors, settings.min_dist, settings.seed
        )
        meta = {"points": len(coords), **settings.layout()}
        store.put(Finding(mapped.layout_key, LAYOUT, mapped.name, meta, {"coords": coords}, {}))
        _cut(mapped, recipe, adapter, cache, make_task)
        done += 1
    keep_cells(maps, cache)
    return done


def keep_cells(maps: MapsPlan, cache: Cache) -> None:
    """Store the cells cut while planning (a dry run stores nothing)."""
    store = AnalysisStore(cache.root)
    for mapped in maps.layers:
        if mapped.unsaved is not None:
            store.put(mapped.unsaved)
            mapped.unsaved = None
