"""The build: recipe → model → plan → compute what the cache lacks → gather → site."""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from ..datasets.analyses import make
from ..datasets.connections import DATA
from ..maps.layout import umap_class
from ..models.adapter import ModelAdapter
from ..models.layers import catalogue, fit_input_size, select
from ..models.weights import digests_in
from ..recipe import Recipe, RenderSettings
from ..registry import Registry, load_registry
from ..site import write_site
from ..store.cache import Cache, canonical_json, default_cache_dir
from ..store.findings import AnalysisStore, Finding, FindingsStore
from .backends import backend_for
from .checks import (
    check_device,
    check_per_channel,
    check_plugin_names,
    check_precision,
    check_unit_positions,
)
from .compose import Context
from .connections import connection_findings, top_examples
from .devices import job_device
from .estimate import estimate
from .gather import make_manifest
from .jobs import ConnectionsJob, DatasetJob, Job, ModelRef, Outcome, PairJob, first_line
from .judging import judge_pictures, judged
from .labelling import concept_findings
from .map_records import maps_record
from .maps import lay_out, map_layers
from .plan import DatasetPlan, Plan, load_starts, make_plan, make_task, start_units
from .runner import Progress, cache_sink, execute, make_jobs, memory_limit
from .settle import settle
from .sources import example_sources, patch_sources, picture_sources


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


def model_ref(recipe: Recipe, adapter: ModelAdapter) -> ModelRef:
    """Name the model for workers, with the input size decision taken while planning."""
    options = {**recipe.model_options, "fixed_size": adapter.input.fixed_size}
    return ModelRef(recipe.model, recipe.weights, canonical_json(options))


def fit_canvases(adapter: ModelAdapter, settings: Sequence[RenderSettings], name: str) -> None:
    """Run the model at the canvas size unless it cannot take it; then say once that every
    canvas is resized to its own size."""
    if fit_input_size(adapter, [s.model_size or s.size for s in settings]):
        h, w = adapter.input.size
        sys.stderr.write(
            f"note: {name} takes only its own input size ({h}x{w}); every transformed "
            "canvas is resized back to it\n"
        )


def plan_build(
    recipe: Recipe, cache: Cache, registry: Registry, adapter: ModelAdapter | None = None
) -> Plan:
    """Load the model, resolve the layers and look every unit up in the cache."""
    check_plugin_names(recipe, registry)
    if adapter is None:
        with digests_in(cache.root):
            adapter = registry.load_model(recipe.model, recipe.weights, **recipe.model_options)
    found = catalogue(adapter)
    layers = select(found, recipe.layers, recipe.model)
    mapped = map_layers(recipe, found, select)
    check_per_channel(recipe, registry)
    check_unit_positions(recipe, layers)
    check_device(recipe.device)
    check_precision(recipe.precision)
    where = recipe.where
    base = recipe.base_dir
    pictures = [
        replace(p, render=settle(p.render, adapter, registry, f"{where}: picture {p.name!r}", base))
        for p in recipe.pictures
    ]
    recipe = replace(
        recipe, render=settle(recipe.render, adapter, registry, where, base), pictures=pictures
    )
    fit_canvases(adapter, [recipe.render, *(p.render for p in pictures)], recipe.model)
    context = Context(
        recipe.model, adapter.labels, {x.name: x for x in found if x.supported}, recipe.base_dir
    )
    return make_plan(recipe, adapter, layers, cache, registry, context, mapped)


def _jobs(
    plan: Plan, cache: Cache, model: ModelAdapter | ModelRef, limit=None, tasks=None
) -> list[Job]:
    """Split tasks (the plan's missing ones by default) into batches workers can run."""
    recipe = plan.recipe
    tasks = plan.missing if tasks is None else tasks
    if not tasks:
        return []
    return make_jobs(
        tasks,
        model,
        str(cache.root),
        recipe.device,
        recipe.precision,
        recipe.batch_size,
        limit,
        recipe.jobs,
    )


def dry_run(plan: Plan, cache: Cache, registry: Registry) -> dict:
    """Return the plan's summary with an estimate of its optimisation time on this machine,
    from a few timed steps of each kind of batch it would run (None: nothing to compute)."""
    summary = plan.summary()
    limit = memory_limit(plan.adapter, plan.recipe.batch_size, plan.recipe.device)
    alone = replace(plan, recipe=replace(plan.recipe, jobs=1))  # timed in this process
    jobs = _jobs(alone, cache, plan.adapter, limit)
    summary["estimate"] = estimate(jobs, registry).as_dict() if jobs else None
    return summary


def _dataset_job(plan: Plan, cache: Cache, model: ModelAdapter | ModelRef) -> DatasetJob | None:
    """Return the dataset pass over the layers whose findings the cache lacks, if any."""
    if plan.dataset is None or not plan.dataset.busy:
        return None
    planned, recipe = plan.dataset, plan.recipe
    return DatasetJob(
        model,
        planned.spec,
        str(recipe.base_dir) if recipe.base_dir else None,
        tuple((layer, planned.keys[layer]) for layer in planned.missing),
        str(cache.root),
        job_device(recipe.device, recipe.jobs),
        recipe.batch_size,
        planned.dataset if isinstance(model, ModelAdapter) else None,
        tuple((a.spec, tuple(a.missing.items())) for a in planned.analyses if a.missing),
    )


def _connections_job(
    plan: Plan, cache: Cache, model: ModelAdapter | ModelRef
) -> ConnectionsJob | None:
    """Return the connections the cache lacks as one job (after the dataset pass, whose
    top examples the data method reads), or None."""
    if plan.connections is None or not plan.connections.missing:
        return None
    recipe, findings = plan.recipe, _findings(plan, cache)
    units = {layer.name: min(layer.channels, recipe.max_channels or layer.channels)
             for layer in plan.layers}  # fmt: skip
    pairs = []
    for pair in plan.connections.missing:
        examples = ()
        if pair.method == DATA:
            top = top_examples(findings.get(pair.layer), units[pair.layer])
            examples = tuple(tuple(int(i) for i in row) for row in top)
        pairs.append(
            PairJob(pair.layer, pair.source, pair.method, pair.key, units[pair.layer], examples)
        )
    dataset = plan.dataset
    return ConnectionsJob(
        model,
        tuple(pairs),
        dataset.spec if dataset else None,
        str(recipe.base_dir) if recipe.base_dir else None,
        str(cache.root),
        job_device(recipe.device, recipe.jobs),
        recipe.batch_size,
        dataset.dataset if dataset and isinstance(model, ModelAdapter) else None,
    )


def pass_stage(planned: DatasetPlan) -> str:
    """Name the dataset pass for its progress bar: what it finds, and its passes if many."""
    todo = [make(a.spec) for a in planned.analyses if a.missing]
    found = (["examples"] if planned.missing else []) + [a.name for a in todo]
    stage = f"dataset {' + '.join(found)}"
    names = [name for a in todo for name in a.pass_names if a.passes > 1]
    if planned.passes > 1:
        stage += f" ({planned.passes} passes: {', '.join(names)})"
    return stage


def _findings(plan: Plan, cache: Cache) -> dict[str, dict]:
    """Return each layer's stored dataset findings (layers the pass has not done are absent)."""
    if plan.dataset is None:
        return {}
    store, planned = FindingsStore(cache.root), plan.dataset
    found = {
        layer: planned.found.get(layer) or store.get(key) for layer, key in planned.keys.items()
    }
    return {layer: meta for layer, meta in found.items() if meta is not None}


def _analysis_findings(plan: Plan, cache: Cache) -> dict[str, dict[str, Finding]]:
    """Return each analysis's stored findings by layer (those not computed are absent)."""
    if plan.dataset is None:
        return {}
    store = AnalysisStore(cache.root)
    out: dict[str, dict[str, Finding]] = {}
    for analysis in plan.dataset.analyses:
        name = analysis.spec.name
        found = {layer: store.get(name, key) for layer, key in analysis.keys.items()}
        out[name] = {layer: f for layer, f in found.items() if f is not None}
    return out


def run_build(
    recipe: Recipe,
    cache_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    registry: Registry | None = None,
    adapter: ModelAdapter | None = None,
    template_dirs: Sequence[str | Path] = (),
    progress: Progress | None = None,
) -> BuildResult:
    """Compute every missing unit of a recipe, then write its atlas."""
    registry = registry or load_registry()
    cache = Cache(cache_dir or default_cache_dir())
    with gc_paused():
        plan = plan_build(recipe, cache, registry, adapter)
    recipe = plan.recipe
    live = adapter is not None
    busy = bool(plan.missing) or bool(plan.dataset and plan.dataset.busy)
    busy = busy or bool(plan.connections and plan.connections.missing)
    unmapped = bool(plan.maps and not all(m.laid_out for m in plan.maps.layers))
    if unmapped:
        umap_class()  # a missing extra is one line before any work, not after it
    busy = busy or unmapped
    name = recipe.backend if busy else "sequential"  # start no cluster for nothing
    with backend_for(name, recipe.jobs, recipe.scheduler, live) as backend:
        model = plan.adapter if backend.shares_memory else model_ref(recipe, plan.adapter)
        limit = (
            None
            if backend.remote
            else memory_limit(  # a remote cluster's is unknown
                plan.adapter, recipe.batch_size, recipe.device, recipe.jobs
            )
        )
        outcomes = _compute(plan, cache, backend, registry, progress, model, limit)
    failed = [o for o in outcomes if o.error]
    with gc_paused():
        index, manifest = _gather_and_write(plan, cache, failed, out_dir, template_dirs)
    computed = sum(o.images for o in outcomes if not o.error)
    return BuildResult(plan, computed, failed, index, manifest)


def _compute(plan: Plan, cache: Cache, backend, registry, progress, model, limit) -> list:
    """Run what the cache lacks: the dataset pass, the connections, the maps' layouts
    (UMAP, in this thread: run beside the workers it gave other layouts than alone), then
    every picture; return the outcomes."""
    sink = cache_sink(str(cache.root))
    outcomes: list[Outcome] = []
    pass_job = _dataset_job(plan, cache, model)
    if pass_job is not None:
        samples = min(pass_job.spec.samples, len(plan.dataset.dataset)) * plan.dataset.passes
        stage = pass_stage(plan.dataset)
        outcomes += execute([pass_job], backend, registry, sink, progress, stage, samples)
    connect = _connections_job(plan, cache, model)
    if connect is not None:
        stage = f"connections ({connect.pairs[0].method})"
        outcomes += execute([connect], backend, registry, sink, progress, stage, connect.work)
    recipe = plan.recipe
    if recipe.render.accentuate:  # the units start from the examples the pass found
        plan.look_up(cache, start_units(plan, _findings(plan, cache)))
        if plan.judge:
            plan.judge.key(plan.units, cache)  # the pictures' keys now hold their starts
    if plan.maps and lay_out(plan.maps, recipe, plan.adapter, cache, make_task, _say):
        plan.look_up(cache, plan.maps.tasks)
    if recipe.render.accentuate:
        load_starts(plan)
    jobs = _jobs(plan, cache, model, limit, plan.missing)
    outcomes += execute(jobs, backend, registry, sink, progress, f"atlas {recipe.name}")
    if plan.judge and plan.judge.missing:
        keys = [key for layer in plan.judge.missing for _, _, key in layer.units]
        found = {key: cache.get(key) for key in keys}
        try:
            judge_pictures(plan.judge, found, cache, plan.adapter.identity())
        except Exception as exc:  # the judge costs its shares, never the pictures or site
            _say(f"warning: the judge could not read the pictures: {first_line(exc)}")
    return outcomes


def _say(text: str) -> None:
    """Write one line of progress on stderr, above any progress bar."""
    tqdm.write(text, file=sys.stderr)


def _gather_and_write(plan, cache, failed, out_dir, template_dirs) -> tuple[Path, dict]:
    """Gather the manifest and write what changed of the site; return index.html and it."""
    recipe = plan.recipe
    keys = [key for task in plan.tasks for key in task.keys]
    entries = {key: plan.entries.get(key) or cache.get(key) for key in keys}
    findings, analyses = _findings(plan, cache), _analysis_findings(plan, cache)
    wired, shares = connection_findings(plan.connections, cache), judged(plan.judge, cache)
    manifest = make_manifest(plan, entries, failed, findings, analyses, wired, shares)
    errors = {o.key: o.error for o in failed}
    maps = maps_record(plan, entries, errors, manifest["layers"])
    manifest["activation_atlas"] = maps
    images = picture_sources(entries)
    images.update(example_sources(plan, findings, concept_findings(analyses)))
    images.update(patch_sources(plan, maps))
    index = write_site(manifest, images, out_dir or default_out_dir(recipe), template_dirs)
    return index, manifest


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while many small records are made (they hold no
    cycles; at 15,000 units its passes took a third of a rebuild)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
