"""Plan the work of a build: the units (layer x channel) with their pictures, the recipe's
composed pictures, and every optimisation task with its canonical spec and cache key."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from ..contracts import Dataset
from ..datasets.analyses import AnalysisSpec, make, passes, wanted
from ..datasets.examples import sample_order
from ..datasets.labels import Labels, probe
from ..datasets.prepare import prepare
from ..engine.objectives import INPUT, Diversity, Objective
from ..engine.relu import has_gelus
from ..errors import LayerError
from ..models.adapter import ModelAdapter
from ..models.layers import LayerInfo
from ..recipe import DatasetSpec, Recipe, RenderSettings
from ..registry import Registry
from ..store.cache import Cache, Entry, canonical_json, digest
from ..store.findings import AnalysisStore, FindingsStore, analysis_key, findings_key
from .compose import Context, as_objective, compile_expression
from .connections import ConnectionsPlan, plan_connections
from .judging import JudgePlan, plan_judge
from .maps import MapsPlan, output_classes, plan_maps, sampling_spec

MAIN, NEGATIVE, DIVERSITY = "main", "negative", "diversity"


@dataclass(frozen=True)
class Task:
    """One optimisation: ``images`` pictures of one objective, each stored under its key."""

    key: str
    seed: int
    name: str
    objective: Objective = field(compare=False, repr=False)
    settings: RenderSettings = field(compare=False, repr=False)
    images: int = 1
    group: str = ""  # tasks of one group with equal settings share batches
    spec: dict = field(default_factory=dict, compare=False, repr=False)
    meta: dict = field(default_factory=dict, compare=False, repr=False)
    start: np.ndarray | None = field(default=None, compare=False, repr=False)  # accentuation

    @property
    def keys(self) -> list[str]:
        """Return the cache key of each of the task's images."""
        return [self.key] if self.images == 1 else [f"{self.key}-{i}" for i in range(self.images)]

    @property
    def seeds(self) -> list[int]:
        """Return the RNG seed of each of the task's images."""
        return [self.seed + i for i in range(self.images)]


@dataclass(frozen=True)
class Unit:
    """One channel of a layer: its picture, and its negative and diversity set if asked."""

    layer: str
    channel: int
    label: str | None
    main: Task
    negative: Task | None = None
    diversity: Task | None = None

    @property
    def key(self) -> str:
        """Return the cache key of the unit's main picture."""
        return self.main.key

    @property
    def tasks(self) -> list[Task]:
        """Return the unit's tasks."""
        return [t for t in (self.main, self.negative, self.diversity) if t is not None]


@dataclass(frozen=True)
class PlannedPicture:
    """One of the recipe's composed pictures, with its task."""

    name: str
    expression: str
    task: Task


@dataclass
class AnalysisPlan:
    """One analysis of the dataset pass, with a cache key per layer and what is stored."""

    spec: AnalysisSpec
    keys: dict[str, str] = field(default_factory=dict)  # layer -> key
    cached: set[str] = field(default_factory=set)

    @property
    def missing(self) -> dict[str, str]:
        """Return the (layer: key) findings still to compute."""
        return {layer: key for layer, key in self.keys.items() if layer not in self.cached}

    def summary(self) -> dict:
        """Return plain data for ``--dry-run --json``."""
        analysis = make(self.spec)
        return {
            **self.spec.as_dict(),
            "describe": analysis.describe(),
            "passes": analysis.passes,
            "pass_names": list(analysis.pass_names),
            "layers_cached": sorted(self.cached),
            "layers_to_compute": list(self.missing),
            "cached": not self.missing,
        }


@dataclass
class DatasetPlan:
    """The dataset pass of a build: the data set, and one cache key per selected layer."""

    spec: DatasetSpec
    dataset: Dataset = field(repr=False)
    identity: dict = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # layer -> key
    cached: set[str] = field(default_factory=set)  # layers whose findings are stored
    analyses: list[AnalysisPlan] = field(default_factory=list)
    labels: Labels = field(default_factory=Labels)
    found: dict[str, dict] = field(default_factory=dict, repr=False)  # stored, when planned

    @property
    def missing(self) -> list[str]:
        """Return the layers whose dataset examples the pass still has to find."""
        return [layer for layer in self.keys if layer not in self.cached]

    @property
    def busy(self) -> bool:
        """Return True if the pass has anything to compute: examples or an analysis."""
        return bool(self.missing) or any(a.missing for a in self.analyses)

    @property
    def passes(self) -> int:
        """Return how many times the pass reads the samples."""
        return max([1, *(passes(a.spec) for a in self.analyses if a.missing)])

    def all_keys(self) -> set[str]:
        """Return every cache key of the pass: examples and analyses."""
        return set(self.keys.values()) | {k for a in self.analyses for k in a.keys.values()}

    def as_dict(self) -> dict:
        """Return plain data for manifests and cache keys."""
        return {**self.spec.as_dict(), "identity": self.identity}


@dataclass
class Plan:
    """The selected layers, every unit and picture of the build, and what the cache holds."""

    recipe: Recipe
    adapter: ModelAdapter
    layers: list[LayerInfo]
    units: list[Unit]
    pictures: list[PlannedPicture] = field(default_factory=list)
    cached: set[str] = field(default_factory=set)  # keys of tasks whose images are all stored
    dataset: DatasetPlan | None = None
    entries: dict[str, Entry] = field(default_factory=dict, repr=False)  # verified when planned
    connections: ConnectionsPlan | None = None
    maps: MapsPlan | None = None
    judge: JudgePlan | None = None

    def all_keys(self) -> set[str]:
        """Return every cache key the build uses: pictures, the dataset pass, connections,
        maps."""
        keys = {k for task in self.tasks for k in task.keys}
        keys |= self.dataset.all_keys() if self.dataset else set()
        keys |= {p.key for p in self.connections.pairs} if self.connections else set()
        keys |= self.maps.all_keys() if self.maps else set()
        keys |= self.judge.keys() if self.judge else set()
        return keys

    @property
    def tasks(self) -> list[Task]:
        """Return every task: the units' first, then the composed pictures', then the maps'
        cells'."""
        tasks = [t for u in self.units for t in u.tasks] + [p.task for p in self.pictures]
        return tasks + (self.maps.tasks if self.maps else [])

    def look_up(self, cache: Cache, tasks: Sequence[Task]) -> None:
        """Verify the stored pictures of tasks once and note which tasks are cached."""
        found = {k: cache.get(k) for t in tasks for k in t.keys}
        self.entries.update({k: entry for k, entry in found.items() if entry is not None})
        self.cached |= {t.key for t in tasks if all(k in self.entries for k in t.keys)}

    @property
    def cached_images(self) -> int:
        """Return how many pictures the cache already holds."""
        return sum(t.images for t in self.tasks if t.key in self.cached)

    @property
    def missing(self) -> list[Task]:
        """Return the tasks the cache does not hold."""
        return [t for t in self.tasks if t.key not in self.cached]

    def summary(self) -> dict:
        """Return plain data for ``atlas build --dry-run --json``."""
        per_layer = []
        for layer in self.layers:
            tasks = [t for u in self.units if u.layer == layer.name for t in u.tasks]
            cached = sum(t.key in self.cached for t in tasks)
            per_layer.append(
                {
                    **layer.as_dict(),
                    "units": len(tasks),
                    "cached": cached,
                    "to_compute": len(tasks) - cached,
                }
            )
        unit_tasks = [t for u in self.units for t in u.tasks]
        units_cached = sum(t.key in self.cached for t in unit_tasks)
        pictures_cached = sum(p.task.key in self.cached for p in self.pictures)
        return {
            "recipe": str(self.recipe.path) if self.recipe.path else self.recipe.name,
            "model": self.adapter.source,
            "weights_digest": self.adapter.weights_digest,
            "layers": per_layer,
            "units_total": len(unit_tasks),
            "units_cached": units_cached,
            "units_to_compute": len(unit_tasks) - units_cached,
            "pictures_total": len(self.pictures),
            "pictures_cached": pictures_cached,
            "pictures_to_compute": len(self.pictures) - pictures_cached,
            "dataset": self._dataset_summary(),
            "connections": self.connections.summary() if self.connections else None,
            "activation_atlas": self.maps.summary(self.cached) if self.maps else None,
            "judge": {**self.judge.as_dict(), "cached": not self.judge.missing}
            if self.judge
            else None,
        }

    def _dataset_summary(self) -> dict | None:
        if self.dataset is None:
            return None
        return {
            "source": self.dataset.spec.source,
            "samples": self.dataset.spec.samples,
            "top_k": self.dataset.spec.top_k,
            "layers_cached": sorted(self.dataset.cached),
            "layers_to_compute": self.dataset.missing,
            "cached": not self.dataset.missing,
            "passes": self.dataset.passes,
            "analyses": [a.summary() for a in self.dataset.analyses],
        }


def task_spec(
    adapter: ModelAdapter,
    objective: Objective,
    settings: RenderSettings,
    seed: int,
    images: int = 1,
    patches: bool = False,
) -> dict:
    """Return the plain data that decides a task's pictures (its cache key's content);
    patches: the objective reads token layers as their patch grids (said in the key, so
    pictures made when a channel was the mean over every token are not served); a model
    with GELUs says that they get the gradient redirect too (pictures made before are not
    served)."""
    spec = {
        "model": adapter.identity(),
        "input": adapter.input.as_dict(),
        "objective": objective.spec,
        "render": settings.as_dict(),
        "seed": seed,
    }
    if images > 1:
        spec["images"] = images
    if patches:
        spec["tokens"] = "patches"
    if settings.redirect_relu_steps and has_gelus(adapter.module):
        spec["redirect"] = "relu+gelu"  # GELUs got the redirect later: keys of ReLU nets stay
    return spec


def accent_layer(settings: RenderSettings, objective: Objective, order: Sequence[str]) -> str:
    """Return the layer whose activations a seeded picture keeps near its seed's: the one
    the settings name, else the layer halfway (in the model's order) from the input to the
    objective's deepest layer."""
    if settings.accent_layer is not None:
        if order and settings.accent_layer not in order:
            raise LayerError(
                f"key 'render.accent_layer': {settings.accent_layer!r} is not a layer of the "
                "model; run `atlas layers MODEL` to list them"
            )
        return settings.accent_layer
    places = [order.index(n) if n in order else len(order) for n in objective.layers - {INPUT}]
    if not order or not places:
        raise LayerError("feature accentuation needs an objective that reads a layer")
    return order[max(places) // 2]


def task_seed(spec: dict) -> int:
    """Derive a task's RNG seed from the recipe seed and its objective alone."""
    return int(digest({"seed": spec["seed"], "objective": spec["objective"]})[:15], 16)


def make_task(
    adapter: ModelAdapter,
    objective: Objective,
    settings: RenderSettings,
    seed: int,
    name: str,
    images: int = 1,
    group: str = "",
    meta: dict | None = None,
    patches: frozenset[str] = frozenset(),
    order: Sequence[str] = (),
) -> Task:
    """Return a task with its spec, key and seed (patches: the token layers read as patch
    grids; order: the model's layers in order, for the accent layer's default)."""
    if settings.seeded and objective.layers - {INPUT}:  # a Broken objective fails alone
        settings = replace(settings, accent_layer=accent_layer(settings, objective, order))
    spec = task_spec(adapter, objective, settings, seed, images, bool(objective.layers & patches))
    key, meta = digest(spec), meta or {}
    return Task(key, task_seed(spec), name, objective, settings, images, group, spec, meta)


class Broken(Objective):
    """Stands for an objective whose factory failed: the unit fails alone when computed."""

    def __init__(self, error: Exception, spec: dict):
        self.error, self._spec = error, spec

    def __call__(self, acts):
        raise self.error

    @property
    def layers(self) -> frozenset[str]:
        return frozenset()

    @property
    def spec(self) -> dict:
        return self._spec


def _unit(
    recipe: Recipe,
    adapter: ModelAdapter,
    registry: Registry,
    layer: str,
    c: int,
    label,
    patches: frozenset[str] = frozenset(),
    order: Sequence[str] = (),
):
    """Return one unit with the tasks the recipe asks for."""
    try:
        objective = registry.objective(recipe.objective).factory(layer, c)
    except Exception as exc:  # a plugin's failure costs this unit, not the build
        spec = {"type": "broken", "name": recipe.objective, "layer": layer, "channel": c}
        objective = Broken(exc, spec)
    name = f"{layer} channel {c}" + (f" ({label})" if label else "")
    meta = {"layer": layer, "channel": c, "label": label}
    broken = "broken:" if isinstance(objective, Broken) else ""

    def task(obj: Objective, variant: str, images: int = 1) -> Task:
        suffix = "" if variant == MAIN else f" {variant}"
        return make_task(
            adapter,
            obj,
            recipe.render,
            recipe.seed,
            name + suffix,
            images,
            f"{broken}{variant}:{layer}",
            {**meta, "variant": variant},
            patches,
            order,
        )

    negative = task(-objective, NEGATIVE) if recipe.negative else None
    diverse = None
    if recipe.diversity:
        diverse_obj = objective - recipe.diversity_weight * Diversity(layer)
        diverse = task(diverse_obj, DIVERSITY, recipe.diversity)
    return Unit(layer, c, label, task(objective, MAIN), negative, diverse)


def token_layers(context: Context) -> frozenset[str]:
    """Return the names of the token layers read as patch grids."""
    return frozenset(name for name, info in (context.layers or {}).items() if info.tokens)


def _pictures(recipe: Recipe, adapter: ModelAdapter, registry: Registry, context: Context):
    """Return the recipe's composed pictures as planned tasks."""
    where = recipe.where
    planned = []
    for picture in recipe.pictures:
        label = f"{where}: picture {picture.name!r}"
        if picture.expression is None:
            objective = as_objective(picture.value, registry, context, label)
        else:
            objective = compile_expression(picture.expression, registry, context, label)
        task = make_task(
            adapter,
            objective,
            picture.render,
            picture.seed,
            f"picture {picture.name!r}",
            group="pictures",
            meta={"picture": picture.name},
            patches=token_layers(context),
            order=tuple(context.layers or ()),
        )
        planned.append(PlannedPicture(picture.name, picture.text, task))
    return planned


def make_plan(
    recipe: Recipe,
    adapter: ModelAdapter,
    layers: Sequence[LayerInfo],
    cache: Cache,
    registry: Registry,
    context: Context,
    mapped: Sequence[LayerInfo] = (),
) -> Plan:
    """List every unit and picture and look each task up in the cache (mapped: the layers
    of the recipe's activation atlas)."""
    units, patches, order = [], token_layers(context), tuple(context.layers or ())
    for layer in layers:
        labels = adapter.labels.get(layer.name, ())
        for c in range(min(layer.channels, recipe.max_channels or layer.channels)):
            label = labels[c] if c < len(labels) else None
            units.append(_unit(recipe, adapter, registry, layer.name, c, label, patches, order))
    plan = Plan(recipe, adapter, list(layers), units, _pictures(recipe, adapter, registry, context))
    if recipe.dataset is not None:
        plan.dataset = plan_dataset(recipe, adapter, layers, cache, registry, mapped)
    data = plan.dataset.as_dict() if plan.dataset else None
    plan.connections = plan_connections(recipe, adapter, layers, cache, data)
    if mapped:
        keys = plan.dataset.analyses[-1].keys  # the maps' sampling, planned last
        made = partial(make_task, patches=patches, order=order)
        plan.maps = plan_maps(recipe, adapter, list(mapped), keys, cache, made)
    if recipe.render.accentuate and plan.dataset:
        start_units(plan, plan.dataset.found)
    plan.look_up(cache, plan.tasks)  # each entry verified once
    plan.judge = plan_judge(recipe, adapter, plan.units, cache, registry)
    return plan


def respec(task: Task, settings: RenderSettings | None = None, start: dict | None = None):
    """Return task with other settings, or the example it starts from (the examples'
    finding key and the image's index: its identity, in the key), its spec and key remade."""
    settings = settings or task.settings
    spec = {**task.spec, "render": settings.as_dict()}
    if start is not None:
        spec["start"] = start
    return replace(task, key=digest(spec), settings=settings, spec=spec)


def start_units(plan: Plan, findings: dict[str, dict]) -> list[Task]:
    """Key each accentuated unit's picture and negative of a layer with dataset findings by
    the unit's top example (read only when computed: load_starts); its diversity set, and a
    unit with no example, get ordinary pictures. Return the tasks remade."""
    if plan.dataset is None:
        return []
    remade = []
    for i, unit in enumerate(plan.units):
        found = findings.get(unit.layer)
        if found is None or not unit.main.settings.accentuate or "start" in unit.main.spec:
            continue
        index = top_example(found, unit.channel)
        start = {"examples": plan.dataset.keys[unit.layer], "index": index}
        plain = replace(unit.main.settings, accentuate=False, accent_layer=None)
        tasks = {
            name: respec(task, plain) if index is None or name == "diversity" else
            respec(task, start=start)
            for name, task in _variants(unit)
        }  # fmt: skip
        plan.units[i] = replace(unit, **tasks)
        remade += tasks.values()
    return remade


def load_starts(plan: Plan) -> None:
    """Read the top example each accentuated task still to compute starts from, as 8-bit
    pixels at the model's input (a unit keeps its own; the cached need none)."""
    dataset, adapter = plan.dataset.dataset, plan.adapter
    for i, unit in enumerate(plan.units):
        wanting = [(n, t) for n, t in _variants(unit) if _wants_start(t, plan.cached)]
        if not wanting:
            continue
        index = wanting[0][1].spec["start"]["index"]
        image = prepare(dataset[index][0], adapter).transpose(1, 2, 0)
        pixels = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        plan.units[i] = replace(unit, **{n: replace(t, start=pixels) for n, t in wanting})


def _wants_start(task: Task, cached: set[str]) -> bool:
    """Return True for an accentuated task to compute whose start image is not read yet."""
    return (
        task.settings.accentuate
        and "start" in task.spec
        and task.start is None
        and task.key not in cached
    )


def _variants(unit: Unit) -> list[tuple[str, Task]]:
    """Return a unit's tasks by their field name."""
    named = [("main", unit.main), ("negative", unit.negative), ("diversity", unit.diversity)]
    return [(name, task) for name, task in named if task is not None]


def top_example(found: dict, channel: int) -> int | None:
    """Return the index of a unit's top dataset example, None if it has none."""
    for unit in found["units"]:
        if unit["channel"] == channel and unit["examples"]:
            return int(unit["examples"][0]["index"])
    return None


def plan_dataset(
    recipe: Recipe,
    adapter: ModelAdapter,
    layers: Sequence[LayerInfo],
    cache: Cache,
    registry,
    mapped: Sequence[LayerInfo] = (),
) -> DatasetPlan:
    """Open the recipe's data set and look each layer's examples up in the cache (and the
    samples of each mapped layer)."""
    spec = recipe.dataset
    dataset = registry.load_dataset(
        spec.source,
        base_dir=recipe.base_dir,
        channels=adapter.input.channels,
        **dict(spec.options),
    )
    labels = probe(dataset, sample_order(dataset, spec.samples, spec.seed))
    identity = dataset.identity()
    if labels.classes:  # class names are part of what the data set is
        identity = {**identity, "classes": list(labels.classes)}
    if spec.concepts.asked and labels.kind is None:
        sys.stderr.write(
            f"note: {recipe.where}: [dataset] asks for concepts, but {spec.source} gives no "
            "labels with its images; the atlas is built without concepts\n"
        )
    planned = DatasetPlan(spec, dataset, identity, labels=labels)
    store = FindingsStore(cache.root)
    for layer in layers:
        key = findings_key(
            adapter.identity(), adapter.input.as_dict(), planned.as_dict(), layer.name,
            "patches" if layer.tokens else None,
        )  # fmt: skip
        planned.keys[layer.name] = key
        found = store.get(key)
        if found is not None:
            planned.cached.add(layer.name)
            planned.found[layer.name] = found
    planned.analyses = [
        _plan_analysis(analysis, adapter, planned, layers, cache)
        for analysis in wanted(spec, labels)
    ]
    if mapped:
        sampling = sampling_spec(recipe.activation_atlas, len(output_classes(adapter)))
        planned.analyses.append(_plan_analysis(sampling, adapter, planned, mapped, cache))
    return planned


def _plan_analysis(
    spec: AnalysisSpec,
    adapter: ModelAdapter,
    planned: DatasetPlan,
    layers: Sequence[LayerInfo],
    cache: Cache,
) -> AnalysisPlan:
    """Key one analysis per layer (by the data it reads, not the examples' top_k) and look
    each up in the cache."""
    data = {k: v for k, v in planned.as_dict().items() if k != "top_k"}
    version = make(spec).version
    out, store = AnalysisPlan(spec), AnalysisStore(cache.root)
    for layer in layers:
        read = {**data, "tokens": "patches"} if layer.tokens else data  # as the examples' keys
        key = analysis_key(
            adapter.identity(), adapter.input.as_dict(), read, layer.name, spec.as_dict(), version
        )
        out.keys[layer.name] = key
        if store.get(spec.name, key) is not None:
            out.cached.add(layer.name)
    return out


def batches(
    tasks: Sequence[Task], size: int, limit: Callable[[Task], int] | None = None
) -> Iterator[list[Task]]:
    """Group tasks by group and settings into batches of at most size images (or of what
    limit says fits, for the group's first task, if that is fewer)."""
    groups: dict[tuple[str, str], list[Task]] = {}
    for task in tasks:
        groups.setdefault((task.group, canonical_json(task.settings.as_dict())), []).append(task)
    for group in groups.values():
        most = min(size, limit(group[0])) if limit else size
        batch: list[Task] = []
        for task in group:
            if batch and sum(t.images for t in batch) + task.images > most:
                yield batch
                batch = []
            batch.append(task)
        if batch:
            yield batch
