"""The build pipeline: recipe → model → plan → compute missing units → site."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from tqdm import tqdm

from .adapter import ModelAdapter
from .cache import Cache, canonical_json, default_cache_dir
from .cluster import backend_for
from .compose import Context
from .devices import job_device, resolve_device, workers_per_device
from .errors import AtlasError, PluginError
from .estimate import estimate
from .examples import ExampleStore
from .execute import Backend, execute
from .jobs import DatasetJob, Job, ModelRef, Outcome
from .layers import INPUT, catalogue, fit_input_size, select
from .manifest import example_files, make_manifest
from .memory import available_bytes, bytes_per_picture, fit_batch
from .plan import Plan, batches, make_plan
from .plugins import Registry, load_registry
from .recipe import PRECISION_NAMES, Recipe
from .render import RenderSettings, resolve
from .site import write_site
from .sources import load_model
from .weights import digests_in


@dataclass
class BuildResult:
    """What a build did: the plan, how many pictures it computed, failures and the site."""

    plan: Plan
    computed: int = 0
    failed: list[Outcome] = field(default_factory=list)
    index: Path | None = None
    manifest: dict | None = None


def default_out_dir(recipe: Recipe) -> Path:
    """Return where a recipe's atlas goes unless it says otherwise: site/<name>."""
    return recipe.out_dir or Path("site") / recipe.name


def _model_ref(recipe: Recipe, adapter: ModelAdapter) -> ModelRef:
    """Name the model for workers, with the input size decision taken while planning."""
    options = {**recipe.model_options, "fixed_size": adapter.input.fixed_size}
    return ModelRef(recipe.model, recipe.weights, canonical_json(options))


def check_plugin_names(recipe: Recipe, registry: Registry) -> None:
    """Fail before any work if the recipe names something no plugin registered."""
    where = str(recipe.path) if recipe.path else recipe.name
    wanted = [("objectives", recipe.objective, "render.objective")]
    for settings, table in [(recipe.render, "render")] + [
        (p.render, f"pictures {p.name!r}: render") for p in recipe.pictures
    ]:
        wanted.append(("parameterizations", settings.param, f"{table}.param"))
        wanted += [("regularizers", n, f"{table}.regularizers.{n}") for n in settings.regularizers]
    for kind, name, key in wanted:
        try:
            registry.get(kind, name)
        except PluginError as exc:
            raise PluginError(f"{where}: key {key!r}: {exc}") from None


def check_per_channel(recipe: Recipe, registry: Registry, layer: str) -> None:
    """Fail early if the recipe's objective cannot make one picture per channel."""
    try:
        registry.get("objectives", recipe.objective)(layer, [0])
    except TypeError:
        raise PluginError(
            f"objective {recipe.objective!r} does not take channels, so it cannot make one "
            "picture per channel; use 'channel' or 'neuron' in render.objective"
        ) from None
    except Exception:  # the plugin's own failure: its units fail alone, later
        return


def check_precision(name: str) -> None:
    """Fail early on a precision the optimiser does not have."""
    if name not in PRECISION_NAMES:
        raise AtlasError(f"unknown precision {name!r}: use one of {', '.join(PRECISION_NAMES)}")


def check_device(name: str) -> None:
    """Fail early on a device this machine does not have."""
    try:
        device = resolve_device(name)
    except RuntimeError as exc:
        raise AtlasError(f"unknown device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AtlasError(
            f"device {name!r} asked for, but torch sees no CUDA device here; "
            "use --device cpu or auto"
        )


def settle(settings: RenderSettings, adapter: ModelAdapter, registry: Registry, where: str):
    """Fill what a recipe left open: the canvas size and the parameterization's defaults."""
    size = settings.size or tuple(adapter.input.size)
    try:
        return resolve(replace(settings, size=size), registry)
    except AtlasError as exc:
        raise AtlasError(f"{where}: {exc}") from None


def plan_build(
    recipe: Recipe, cache: Cache, registry: Registry, adapter: ModelAdapter | None = None
) -> Plan:
    """Load the model, resolve the layers and look every unit up in the cache."""
    check_plugin_names(recipe, registry)
    if adapter is None:
        with digests_in(cache.root):
            adapter = load_model(registry, recipe.model, recipe.weights, **recipe.model_options)
    found = catalogue(adapter)
    layers = select(found, recipe.layers, recipe.model)
    check_per_channel(recipe, registry, layers[0].name)
    check_device(recipe.device)
    check_precision(recipe.precision)
    where = str(recipe.path) if recipe.path else recipe.name
    pictures = [
        replace(p, render=settle(p.render, adapter, registry, f"{where}: picture {p.name!r}"))
        for p in recipe.pictures
    ]
    recipe = replace(
        recipe, render=settle(recipe.render, adapter, registry, where), pictures=pictures
    )
    fit_canvases(adapter, [recipe.render, *(p.render for p in pictures)], recipe.model)
    context = Context(
        recipe.model,
        adapter.labels,
        {layer.name: layer for layer in found if layer.supported},
        recipe.base_dir,
    )
    return make_plan(recipe, adapter, layers, cache, registry, context)


def fit_canvases(adapter: ModelAdapter, settings: Sequence[RenderSettings], name: str) -> None:
    """Run the model at the canvas size unless it cannot take it; then say once that every
    canvas is resized to its own size."""
    if fit_input_size(adapter, [s.model_size or s.size for s in settings]):
        h, w = adapter.input.size
        sys.stderr.write(
            f"note: {name} takes only its own input size ({h}x{w}); every transformed "
            "canvas is resized back to it\n"
        )


def _jobs(plan: Plan, cache: Cache, device: str, in_process: bool) -> list[Job]:
    """Split the missing tasks into batches that workers can run."""
    model = plan.adapter if in_process else _model_ref(plan.recipe, plan.adapter)
    recipe = plan.recipe
    limit = None if recipe.scheduler else _memory_limit(plan)  # a remote cluster's is unknown
    device = job_device(device, recipe.jobs)
    return [
        Job(model, tuple(batch), str(cache.root), device, recipe.precision)
        for batch in batches(plan.missing, recipe.batch_size, limit)
    ]


def dry_run(plan: Plan, cache: Cache, registry: Registry) -> dict:
    """Return the plan's summary with an estimate of its optimisation time on this machine,
    from a few timed steps of each kind of batch it would run (None: nothing to compute)."""
    summary = plan.summary()
    alone = replace(plan, recipe=replace(plan.recipe, jobs=1))
    jobs = _jobs(alone, cache, plan.recipe.device, in_process=True)
    summary["estimate"] = estimate(jobs, registry).as_dict() if jobs else None
    return summary


def _memory_limit(plan: Plan):
    """Return a function giving the largest batch of a task's kind that fits in memory,
    measured once per layer set and canvas; say so on stderr when it caps the recipe's."""
    recipe, device = plan.recipe, resolve_device(plan.recipe.device)
    available = available_bytes(device)
    sharing = workers_per_device(job_device(recipe.device, recipe.jobs), recipe.jobs)
    known: dict[tuple, int] = {}

    def limit(task) -> int:
        layers = frozenset(task.objective.layers - {INPUT})
        key = (layers, task.settings.size, task.settings.model_size)
        if key not in known:
            try:
                per = bytes_per_picture(
                    plan.adapter, layers, task.settings.size, device, task.settings.model_size
                )
            except Exception:  # a model the measure cannot run: its batches stay as asked
                known[key] = recipe.batch_size
                return known[key]
            known[key] = fit_batch(recipe.batch_size, per, available, sharing)
            if known[key] < recipe.batch_size or device.type == "cuda":
                capped = "capped at" if known[key] < recipe.batch_size else "of"
                sys.stderr.write(
                    f"note: batches of {', '.join(sorted(layers)) or 'the picture'} {capped} "
                    f"{known[key]} pictures (batch_size {recipe.batch_size}) to fit "
                    f"{available / 1e9:.1f} GB of free memory on {device} "
                    f"({per / 1e6:.0f} MB a picture)\n"
                )
        return known[key]

    return limit


class ProgressBar(tqdm):
    """A tqdm bar whose fractional steps never carry it past its total (float sums of
    per-step shares overshoot by a hair, which tqdm shows as a negative time left)."""

    def update(self, n: float = 1) -> bool | None:
        """Advance by n, but not beyond the total."""
        return super().update(min(n, self.total - self.n) if self.total else n)


def _bar(total: int, desc: str, unit: str, show: bool) -> tqdm:
    """Return a progress bar on stderr (disabled when quiet or when there is nothing to do)."""
    return ProgressBar(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=not show or total == 0,
        mininterval=0.5,
        bar_format="{l_bar}{bar}| {n:.0f}/{total} [{elapsed}<{remaining}]",
    )


def _dataset_pass(
    plan: Plan,
    cache: Cache,
    recipe: Recipe,
    registry: Registry,
    backend: Backend,
    in_process: bool,
    show: bool,
) -> list[Outcome]:
    """Run the dataset pass over the layers whose examples the cache lacks."""
    if plan.dataset is None or not plan.dataset.missing:
        return []
    planned = plan.dataset
    job = DatasetJob(
        plan.adapter if in_process else _model_ref(recipe, plan.adapter),
        planned.spec,
        str(recipe.base_dir) if recipe.base_dir else None,
        tuple((layer, planned.keys[layer]) for layer in planned.missing),
        str(cache.root),
        job_device(recipe.device, recipe.jobs),
        recipe.batch_size,
        planned.dataset if in_process else None,
    )
    samples = min(planned.spec.samples, len(planned.dataset))
    with _bar(samples, "dataset examples", "img", show) as bar:
        outcomes = execute([job], backend, registry, bar.update)
        bar.update(samples - bar.n)  # a worker elsewhere reports only when it is done
    return outcomes


def _examples(plan: Plan, cache: Cache) -> dict[str, dict]:
    """Return each layer's stored dataset findings (layers the pass has not done are absent)."""
    if plan.dataset is None:
        return {}
    store = ExampleStore(cache.root)
    found = {layer: store.get(key) for layer, key in plan.dataset.keys.items()}
    return {layer: meta for layer, meta in found.items() if meta is not None}


def run_build(
    recipe: Recipe,
    cache_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    registry: Registry | None = None,
    adapter: ModelAdapter | None = None,
    template_dirs: Sequence[str | Path] = (),
    show_progress: bool = True,
) -> BuildResult:
    """Compute every missing unit of a recipe, then write its atlas."""
    registry = registry or load_registry()
    cache = Cache(cache_dir or default_cache_dir())
    plan = plan_build(recipe, cache, registry, adapter)
    if adapter is not None and recipe.backend == "dask":
        raise AtlasError(
            "a live module cannot be sent to a Dask cluster: save it and build from a file "
            "(file:PATH) or a source its workers can load"
        )
    if adapter is not None and recipe.jobs > 1:
        recipe = replace(recipe, backend="threading")  # a live module stays in this process
    in_process = recipe.backend != "dask" and (recipe.jobs == 1 or recipe.backend == "threading")
    jobs = _jobs(plan, cache, recipe.device, in_process)
    todo = sum(t.images for t in plan.missing)
    busy = bool(jobs) or bool(plan.dataset and plan.dataset.missing)
    name = recipe.backend if busy else "sequential"  # start no cluster for nothing
    with backend_for(name, recipe.jobs, recipe.scheduler) as backend:
        outcomes = _dataset_pass(plan, cache, recipe, registry, backend, in_process, show_progress)
        with _bar(todo, f"atlas {recipe.name}", "img", show_progress) as bar:
            outcomes += execute(jobs, backend, registry, bar.update)
    failed = [o for o in outcomes if o.error]
    entries = {key: cache.get(key) for task in plan.tasks for key in task.keys}
    examples = _examples(plan, cache)
    manifest = make_manifest(plan, entries, failed, examples)
    images = {key: entry.png for key, entry in entries.items() if entry}
    images.update(example_files(examples))
    index = write_site(manifest, images, out_dir or default_out_dir(recipe), template_dirs)
    computed = sum(o.images for o in outcomes if not o.error)
    return BuildResult(plan, computed, failed, index, manifest)
