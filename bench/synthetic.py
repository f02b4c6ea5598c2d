"""A synthetic manifest the size of an exhaustive atlas (no model is run): layers of units
with class labels on the last layer and concept detectors spread over the rest, for timing
the site and its search at scale.

    manifest(layers=28, units=536)  # 15,008 units
"""

from __future__ import annotations

import random

WORDS = [
    "wheel",
    "window",
    "fur",
    "grass",
    "sky",
    "road",
    "tree",
    "water",
    "dog",
    "cat",
    "bird",
    "car",
    "person",
    "face",
    "eye",
    "leg",
    "hair",
    "stripes",
    "dots",
    "checks",
    "honeycomb",
    "zigzag",
    "spiral",
    "grid",
    "lined",
    "woven",
    "fabric",
    "brick",
    "wood",
    "metal",
    "glass",
    "paper",
    "plastic",
    "sand",
    "snow",
    "cloud",
    "mountain",
    "building",
    "door",
    "table",
    "chair",
    "bed",
    "screen",
]


def concept_names(n: int, rng: random.Random) -> list[str]:
    """Return n distinct concept names of one or two words."""
    names: list[str] = []
    while len(names) < n:
        name = " ".join(rng.sample(WORDS, rng.choice((1, 2))))
        if name not in names:
            names.append(name)
    return names


def unit_record(layer: str, slug: str, channel: int, label, concept, score) -> dict:
    """Return a manifest unit record as gather makes it (no pictures behind it)."""
    page = f"units/{slug}/{channel}.html"
    return {
        "channel": channel,
        "label": label,
        "key": f"{slug}-{channel}",
        "page": page,
        "image": None,
        "thumb": None,
        "objective_final": 1.0,
        "curve": [],
        "error": "synthetic",
        "negative": None,
        "diversity": [],
        "predicted_share": None,
        "examples": [],
        "dataset": None,
        "reached_over_max": None,
        "concepts": [{"name": concept, "score": score, "kind": "iou"}] if concept else [],
        "concept": concept if concept and score >= 0.04 else None,
        "inputs": [],
        "outputs": [],
    }


def manifest(layers: int = 28, units: int = 536, seed: int = 0) -> dict:
    """Return a manifest of layers x units; the last layer's units are labelled classes."""
    rng = random.Random(seed)
    concepts = concept_names(400, rng)
    classes = concept_names(units, rng)
    out = []
    for i in range(layers):
        name = f"layer{i // 7 + 1}.{i % 7}.conv" if i < layers - 1 else "fc"
        slug = name
        records = []
        for c in range(units):
            label = classes[c] if name == "fc" else None
            concept = rng.choice(concepts) if rng.random() < 0.4 else None
            records.append(unit_record(name, slug, c, label, concept, round(rng.random() / 5, 4)))
        detectors = [r["concept"] for r in records if r["concept"]]
        by_concept: dict[str, int] = {}
        for concept in detectors:
            by_concept[concept] = by_concept.get(concept, 0) + 1
        out.append(
            {
                "name": name,
                "type": "Conv2d",
                "shape": [units, 14, 14],
                "channels": units,
                "supported": True,
                "channel_meaning": "feature map channel (mean over space)",
                "slug": slug,
                "page": f"layers/{slug}.html",
                "summary": {
                    "units": units,
                    "detectors": len(detectors),
                    "unique_concepts": len(by_concept),
                    "by_concept": dict(sorted(by_concept.items(), key=lambda kv: -kv[1])),
                },
                "units": records,
            }
        )
    return {
        "format": 1,
        "title": "synthetic",
        "description": "",
        "generated": "2026-12-02T00:00:00+00:00",
        "model": {
            "source": "synthetic/net",
            "weights": "none",
            "digest": "0",
            "random_weights": False,
            "description": "",
            "input": {"channels": 3, "size": [224, 224]},
        },
        "objective": "channel",
        "seed": 0,
        "render": {"param": "fft", "steps": 2, "lr": 0.05, "size": [8, 8]},
        "negative": False,
        "diversity": 0,
        "units_total": layers * units,
        "layers": out,
        "pictures": [],
        "dataset": None,
        "concepts": {
            "kind": "iou",
            "source": "synthetic",
            "classes": concepts,
            "detector_iou": 0.04,
            "detector_selectivity": 0.5,
            "detector_share": 0.5,
        },
    }
