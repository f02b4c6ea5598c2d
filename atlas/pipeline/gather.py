"""The manifest: everything the site shows, gathered as plain data with relative paths."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..datasets.concepts import UnitConcepts
from ..models.sources.common import is_random_init
from ..site import slugify
from ..store.cache import Entry
from ..store.findings import Finding
from .jobs import Outcome
from .labelling import concept_findings, concepts_record, layer_concepts
from .plan import Plan, Unit


def _picture(entry: Entry | None, image: str, thumb: str) -> dict | None:
    """Return a picture's record for the manifest, or None if it is not stored."""
    if entry is None:
        return None
    return {
        "key": entry.key,
        "image": image,
        "thumb": thumb,
        "objective_final": entry.meta.get("objective_final"),
    }


def example_file_key(layer: str, channel: int, rank: int) -> str:
    """Return the key under which one dataset example's file travels to the site."""
    return f"example:{layer}:{channel}:{rank}"


def example_files(examples: Mapping[str, dict]) -> dict[str, Path]:
    """Return every dataset example's crop file by its key."""
    return {
        example_file_key(layer, unit["channel"], rank): Path(example["file"])
        for layer, meta in examples.items()
        for unit in meta["units"]
        for rank, example in enumerate(unit["examples"])
    }


def _data_record(unit: Unit, slug: str, found: dict | None, reached: float | None) -> dict:
    """Return a unit's dataset fields: examples, statistics and reached / dataset max."""
    if found is None:
        return {"examples": [], "dataset": None, "reached_over_max": None}
    mine = found["units"][unit.channel]
    examples = [
        {
            "key": example_file_key(unit.layer, unit.channel, rank),
            "image": f"examples/{slug}/{unit.channel}-{rank}.png",
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


def _unit_record(
    unit: Unit,
    slug: str,
    entries: Mapping[str, Entry | None],
    errors: dict,
    found: dict | None = None,
    labelled: UnitConcepts | None = None,
) -> dict:
    """Return one unit's manifest record: picture, negative, diversity set and examples."""
    entry = entries.get(unit.key)
    meta = entry.meta if entry else {}
    base = f"{slug}/{unit.channel}"
    negative = None
    if unit.negative is not None:
        negative = _picture(
            entries.get(unit.negative.key),
            f"images/{base}-negative.png",
            f"thumbs/{base}-negative.png",
        )
    if negative and negative["objective_final"] is not None:
        negative["objective_final"] = -negative["objective_final"]  # the unit's own value
    diversity = []
    if unit.diversity is not None:
        for i, key in enumerate(unit.diversity.keys):
            record = _picture(
                entries.get(key),
                f"images/{base}-diversity-{i}.png",
                f"thumbs/{base}-diversity-{i}.png",
            )
            if record:
                diversity.append(record)
    return {
        "channel": unit.channel,
        "label": unit.label,
        "key": unit.key,
        "page": f"units/{base}.html",
        "image": f"images/{base}.png" if entry else None,
        "thumb": f"thumbs/{base}.png" if entry else None,
        "objective_final": meta.get("objective_final"),
        "curve": meta.get("curve", []),
        "error": None if entry else errors.get(unit.key, "not computed"),
        "negative": negative,
        "diversity": diversity,
        "predicted_share": meta.get("predicted_share"),
        **_data_record(unit, slug, found, meta.get("objective_final")),
        "concepts": labelled.concepts if labelled else [],
        "concept": labelled.concept if labelled else None,
    }


def _picture_records(plan: Plan, entries: Mapping[str, Entry | None], errors: dict) -> list[dict]:
    """Return the manifest records of the recipe's composed pictures."""
    taken: set[str] = set()
    records = []
    for picture in plan.pictures:
        slug = slugify(picture.name, taken)
        entry = entries.get(picture.task.key)
        meta = entry.meta if entry else {}
        records.append(
            {
                "name": picture.name,
                "objective": picture.expression,
                "key": picture.task.key,
                "page": f"pictures/{slug}.html",
                "image": f"images/pictures/{slug}.png" if entry else None,
                "thumb": f"thumbs/pictures/{slug}.png" if entry else None,
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
) -> dict:
    """Gather everything the site shows, as plain data with relative paths."""
    examples = examples or {}
    concepts = concept_findings(analyses or {})
    labelled = layer_concepts(plan, concepts, examples)
    errors = {o.key: o.error for o in failed}
    taken: set[str] = {"pictures"}
    layers = []
    for layer in plan.layers:
        slug = slugify(layer.name, taken)
        per_unit, summary = labelled.get(layer.name, ([], None))
        units = [
            _unit_record(
                unit,
                slug,
                entries,
                errors,
                examples.get(layer.name),
                per_unit[unit.channel] if unit.channel < len(per_unit) else None,
            )
            for unit in plan.units
            if unit.layer == layer.name
        ]
        layers.append(
            {
                **layer.as_dict(),
                "slug": slug,
                "page": f"layers/{slug}.html",
                "summary": summary,
                "units": units,
            }
        )
    recipe, adapter = plan.recipe, plan.adapter
    return {
        "format": 1,
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
    }


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
