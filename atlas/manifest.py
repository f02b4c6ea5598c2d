"""The manifest: everything the site shows, gathered as plain data with relative paths."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence

from .cache import Entry
from .execute import Outcome
from .plan import Plan, Unit
from .site import slugify


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


def _unit_record(unit: Unit, slug: str, entries: Mapping[str, Entry | None], errors: dict) -> dict:
    """Return one unit's manifest record: picture, negative and diversity set."""
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
    plan: Plan, entries: Mapping[str, Entry | None], failed: Sequence[Outcome]
) -> dict:
    """Gather everything the site shows, as plain data with relative paths."""
    errors = {o.key: o.error for o in failed}
    taken: set[str] = {"pictures"}
    layers = []
    for layer in plan.layers:
        slug = slugify(layer.name, taken)
        units = [
            _unit_record(unit, slug, entries, errors)
            for unit in plan.units
            if unit.layer == layer.name
        ]
        layers.append(
            {**layer.as_dict(), "slug": slug, "page": f"layers/{slug}.html", "units": units}
        )
    recipe, adapter = plan.recipe, plan.adapter
    return {
        "format": 1,
        "title": recipe.title or recipe.name,
        "description": recipe.description,
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "model": {
            **adapter.identity(),
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
    }
