"""The manifest: everything the site shows, gathered as plain data with relative paths."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..datasets.concepts import UnitConcepts
from ..models.layers import LayerInfo
from ..models.sources.common import is_random_init
from ..site import paths
from ..store.cache import Entry
from ..store.findings import Finding
from .connections import wiring
from .jobs import Outcome
from .labelling import concept_findings, concepts_record, layer_concepts
from .plan import Plan, Unit

FORMAT = 2  # the manifest's format: 2 puts thumbnails in sheets and examples in strips


def _picture(entry: Entry | None, image: str, size: Sequence[int]) -> dict | None:
    """Return a picture's record for the manifest (its full-size PNG, of size [h, w]), or
    None if it is not stored."""
    if entry is None:
        return None
    return {
        "key": entry.key,
        "image": image,
        "size": list(size),
        "objective_final": entry.meta.get("objective_final"),
    }


def example_file_key(layer: str, channel: int, rank: int) -> str:
    """Return the key under which one dataset example's picture travels to the site."""
    return f"example:{layer}:{channel}:{rank}"


def crop_size(layer: LayerInfo, found: dict, size: Sequence[int]) -> tuple[int, int]:
    """Return the size of a layer's example crops: its receptive field inside the input,
    or the whole input for units with no spatial map."""
    if len(layer.shape) != 3:
        return int(size[0]), int(size[1])
    field = found.get("field", size)
    return min(int(field[0]), int(size[0])), min(int(field[1]), int(size[1]))


def _data_record(
    unit: Unit, slug: str, found: dict | None, reached: float | None, crop: tuple[int, int]
) -> dict:
    """Return a unit's dataset fields: examples (in its strip), statistics and reached /
    dataset max."""
    if found is None:
        return {"examples": [], "dataset": None, "reached_over_max": None}
    mine = found["units"][unit.channel]
    total = len(mine["examples"])
    examples = [
        {
            "key": example_file_key(unit.layer, unit.channel, rank),
            **paths.example(slug, unit.channel, rank, total, crop),
            "value": example["value"],
            "index": example["index"],
        }
        for rank, example in enumerate(mine["examples"])
    ]
    stats = {
        "max": mine["max"],
        "mean": mine["mean"],
        "p99": mine["p99"],
        "samples": found["samples"],
    }
    ratio, basis = reached_over_max(reached, mine["max"], mine["mean"])
    return {
        "examples": examples,
        "dataset": stats,
        "reached_over_max": ratio,
        "reached_over_max_basis": basis,
    }


def reached_over_max(reached: float | None, top: float, mean: float) -> tuple[float | None, str]:
    """Return how far the picture drives the unit compared with the best data, and how.

    reached / max for units that are non-negative on data (ReLU features: the usual
    check); for units that go negative (logits, pre-activations), where a max near zero
    makes that ratio explode, the ratio of the distances above the data's mean,
    (reached - mean) / (max - mean), which reads the same way (1: as far as the best image).
    """
    if reached is None:
        return None, "max"
    if mean >= 0 and top > 0:
        return round(reached / top, 4), "max"
    if top > mean:
        return round((reached - mean) / (top - mean), 4), "above_mean"
    return None, "max"


@dataclass(frozen=True)
class LayerContext:
    """What every unit record of one layer shares: where it goes and what it knows."""

    slug: str
    total: int  # the layer's units, each a cell of its thumbnail sheets
    entries: Mapping[str, Entry | None]
    errors: dict
    found: dict | None  # the layer's dataset findings
    crop: tuple[int, int]  # the size of its example crops


def _variants(unit: Unit, ctx: LayerContext) -> tuple[dict | None, list[dict]]:
    """Return a unit's negative picture and its diversity set (full-size PNGs)."""
    size = unit.main.settings.size
    negative = None
    if unit.negative is not None:
        image = paths.full_image(ctx.slug, f"{unit.channel}-negative")
        negative = _picture(ctx.entries.get(unit.negative.key), image, size)
    if negative and negative["objective_final"] is not None:
        negative["objective_final"] = -negative["objective_final"]  # the unit's own value
    diversity = []
    for i, key in enumerate(unit.diversity.keys if unit.diversity else []):
        image = paths.full_image(ctx.slug, f"{unit.channel}-diversity-{i}")
        record = _picture(ctx.entries.get(key), image, size)
        if record:
            diversity.append(record)
    return negative, diversity


def _unit_record(unit: Unit, ctx: LayerContext, labelled: UnitConcepts | None) -> dict:
    """Return one unit's manifest record: picture, negative, diversity set and examples."""
    entry = ctx.entries.get(unit.key)
    meta = entry.meta if entry else {}
    size = unit.main.settings.size
    image = paths.full_image(ctx.slug, str(unit.channel))
    negative, diversity = _variants(unit, ctx)
    return {
        "channel": unit.channel,
        "label": unit.label,
        "key": unit.key,
        "page": paths.unit_page(ctx.slug, unit.channel),
        "image": image if entry else None,
        "size": list(size),
        "thumb": paths.thumb(ctx.slug, unit.channel, ctx.total, size, image) if entry else None,
        "objective_final": meta.get("objective_final"),
        "curve": meta.get("curve", []),
        "error": None if entry else ctx.errors.get(unit.key, "not computed"),
        "negative": negative,
        "diversity": diversity,
        "predicted_share": meta.get("predicted_share"),
        **_data_record(unit, ctx.slug, ctx.found, meta.get("objective_final"), ctx.crop),
        "concepts": labelled.concepts if labelled else [],
        "concept": labelled.concept if labelled else None,
    }


def _picture_records(plan: Plan, entries: Mapping[str, Entry | None], errors: dict) -> list[dict]:
    """Return the manifest records of the recipe's composed pictures."""
    taken: set[str] = set()
    records = []
    for i, picture in enumerate(plan.pictures):
        slug = paths.slugify(picture.name, taken)
        entry = entries.get(picture.task.key)
        meta = entry.meta if entry else {}
        size = picture.task.settings.size
        image = paths.full_image(paths.PICTURES, slug)
        records.append(
            {
                "name": picture.name,
                "objective": picture.expression,
                "key": picture.task.key,
                "page": paths.picture_page(slug),
                "image": image if entry else None,
                "size": list(size),
                "thumb": paths.thumb(paths.PICTURES, i, len(plan.pictures), size, image)
                if entry
                else None,
                "objective_final": meta.get("objective_final"),
                "curve": meta.get("curve", []),
                "error": None if entry else errors.get(picture.task.key, "not computed"),
            }
        )
    return records


def make_manifest(
    plan: Plan,
    entries: Mapping[str, Entry | None],
    failed: Sequence[Outcome],
    examples: Mapping[str, dict] | None = None,
    analyses: Mapping[str, Mapping[str, Finding]] | None = None,
    connections: Mapping[str, Finding] | None = None,
    judged: Mapping[tuple[str, int], float] | None = None,
) -> dict:
    """Gather everything the site shows, as plain data with relative paths (judged: the
    judge's share per (layer, channel))."""
    examples = examples or {}
    concepts = concept_findings(analyses or {})
    labelled = layer_concepts(plan, concepts, examples)
    errors = {o.key: o.error for o in failed}
    taken: set[str] = {paths.PICTURES}
    layers = []
    for layer in plan.layers:
        slug = paths.slugify(layer.name, taken)
        per_unit, summary = labelled.get(layer.name, ([], None))
        mine = [unit for unit in plan.units if unit.layer == layer.name]
        found = examples.get(layer.name)
        crop = crop_size(layer, found or {}, plan.adapter.input.size)
        ctx = LayerContext(slug, len(mine), entries, errors, found, crop)
        units = [
            _unit_record(
                unit, ctx, per_unit[unit.channel] if unit.channel < len(per_unit) else None
            )
            for unit in mine
        ]
        for record in units:
            share = (judged or {}).get((layer.name, record["channel"]))
            record["judged_share"] = None if share is None else round(share, 4)
        layers.append(
            {
                **layer.as_dict(),
                "slug": slug,
                "page": paths.layer_page(slug),
                "summary": summary,
                "units": units,
            }
        )
    _wire(plan, layers, connections or {})
    recipe, adapter = plan.recipe, plan.adapter
    return {
        "format": FORMAT,
        "title": recipe.title or recipe.name,
        "description": recipe.description,
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "model": {
            **adapter.identity(),
            "random_weights": is_random_init(adapter.weights_digest),
            "description": adapter.description,
            "input": adapter.input.as_dict(),
        },
        "objective": recipe.objective,
        "seed": recipe.seed,
        "render": recipe.render.as_dict(),
        "negative": recipe.negative,
        "diversity": recipe.diversity,
        "units_total": len(plan.units),
        "layers": layers,
        "pictures": _picture_records(plan, entries, errors),
        "dataset": _dataset_record(plan, examples),
        "concepts": concepts_record(plan, concepts),
        "connections": _connections_record(plan, connections or {}),
        "judge": plan.judge.as_dict() if plan.judge else None,
    }


def _wire(plan: Plan, layers: list[dict], found: Mapping[str, Finding]) -> None:
    """Give every unit its strongest inputs and outputs, each with the other unit's page
    and thumbnail (empty lists where no connection was computed)."""
    top = plan.connections.settings.top if plan.connections else 0
    by_name = {layer["name"]: layer for layer in layers}
    shown = {layer["name"]: len(layer["units"]) for layer in layers}
    wired = wiring(found, top, shown)

    def linked(items: list[dict]) -> list[dict]:
        out = []
        for item in items:
            other = by_name[item["layer"]]["units"][item["channel"]]
            out.append({**item, "page": other["page"], "thumb": other["thumb"]})
        return out

    for layer in layers:
        for unit in layer["units"]:
            place = (layer["name"], unit["channel"])
            unit["inputs"] = linked(wired.inputs.get(place, []))
            unit["outputs"] = linked(wired.outputs.get(place, []))


def _connections_record(plan: Plan, found: Mapping[str, Finding]) -> list[dict] | None:
    """Return the computed pairs and their method (None: the recipe asks for none)."""
    if plan.connections is None:
        return None
    top = plan.connections.settings.top
    return [
        {"layer": p.layer, "from": p.source, "method": p.method, "top": top}
        for p in plan.connections.pairs
        if p.layer in found
    ]


def _dataset_record(plan: Plan, examples: Mapping[str, dict]) -> dict | None:
    """Return the top-level dataset facts, with what the pass skipped."""
    if plan.dataset is None:
        return None
    spec = plan.dataset.spec
    skipped = next((meta.get("skipped", []) for meta in examples.values()), [])
    samples = next((meta["samples"] for meta in examples.values()), 0)
    return {
        "source": spec.source,
        "samples": samples,
        "top_k": spec.top_k,
        "asked": spec.samples,
        "skipped": skipped,
    }
