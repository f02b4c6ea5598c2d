"""Transfer: do the demo's class pictures read as their class to another model?

For each technique and setting, the U-Net's six foreground class pictures (3 seeds) are
built by `atlas build` with `[judge] model = "shapes/judge"` (a dilated FCN trained from
another seed on other sizes, colours, noise and blur; never optimised against). Per class:
the share of the picture's pixels the judge labels as the class (``judged_share``) and the
share the U-Net itself does (``predicted_share``), means of the 3 seeds; and a sheet of the
pictures (one row per setting, seeds side by side per class).

Reference rows say what the judge makes of pictures that *are* the class: the 8 of 3000
images from the demo's generator with the most of each class, and frames drawn in the
data's style packed with the class (flat shapes on a hexagonal lattice, at two sizes; the
texture filling the frame).

python bench/transfer.py            # every setting (about 10 min on a 2-core CPU)
python bench/transfer.py fft maco   # only these
Writes bench/results/transfer.json and bench/results/transfer.png.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from atlas_shapes import data
from build_demo import machine

import atlas
from atlas.datasets.spectrum import dataset_images, write_spectrum
from atlas.models.adapter import ModelAdapter
from atlas.pipeline.judging import judge_shares
from atlas.registry import load_registry

RESULTS = Path(__file__).parent / "results"
CLASSES = range(1, 7)  # the foreground classes
RADII = (11, 14)  # px: the demo's generator draws radii of 6-15 px on its 64 px frames
SEEDS = (0, 1, 2)
DEMO = {"size": 64, "steps": 256, "lr": 0.05, "param": "fft", "transforms": True}
STRONG = {"pad": 16, "jitter": 16, "scales": [0.75, 0.85, 1.0, 1.15, 1.3], "degrees": 30}
DATASET = {"source": "shapes/val", "samples": 1000, "top_k": 4}


def settings(spectrum: Path) -> dict[str, dict]:
    """Return every setting compared: render keys on top of the demo's."""
    maco = {"param": "maco", "lr": None, "transforms": None}  # MACO's own lr and crops
    return {
        "fft": {},
        "pixel": {"param": "pixel", "lr": 0.01},
        "maco 1/f, contrast 1": {**maco, "contrast": 1.0},  # MACO before the fix
        "maco 1/f": maco,
        "maco shapes/val": {**maco, "spectrum": str(spectrum)},
        "no transforms": {"transforms": False},
        "strong transforms": {"transforms": STRONG},
        "512 steps": {"steps": 512},
        "model_size 128": {"model_size": 128},
        "model_size 32": {"model_size": 32},
        "tv 0.05": {"regularizers": {"tv": 0.05}},
        "diversity 3": {"diversity": 3},
        "decay 1.5": {"decay": 1.5},
        "decay 2": {"decay": 2.0},
        "decay 2, lr 0.02": {"decay": 2.0, "lr": 0.02},
        "decay 2, no transforms": {"decay": 2.0, "transforms": False},
        "decay 2, no transforms, 512": {"decay": 2.0, "transforms": False, "steps": 512},
        "decay 2, lr 0.02, strong transforms": {"decay": 2.0, "lr": 0.02, "transforms": STRONG},
        "decay 2.5, lr 0.02": {"decay": 2.5, "lr": 0.02},
        "accentuate": {"accentuate": True},
        "accentuate, decay 2": {"accentuate": True, "decay": 2.0},
    }


def picture(site: Path, image: str) -> np.ndarray:
    """Return a site picture as RGB uint8."""
    return cv2.imread(str(site / image))[..., ::-1]


def run(name: str, keys: dict, cache: Path, seed: int) -> tuple[list[dict], float]:
    """Build the U-Net's class pictures with these settings; return the foreground units'
    records and the seconds the build took."""
    render = {k: v for k, v in {**DEMO, **keys}.items() if v is not None}
    dataset = DATASET if render.get("accentuate") else None
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = atlas.build(
            model="shapes/unet", layers=["output"], weights="default", seed=seed,
            judge="shapes/judge", dataset=dataset, cache_dir=cache, out_dir=Path(tmp),
            show_progress=False, **render,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        units = [u for u in result.manifest["layers"][0]["units"] if u["channel"] > 0]
        for unit in units:
            unit["pixels"] = picture(Path(tmp), unit["image"])
            if unit["diversity"]:  # judge the diverse set, not the plain picture beside it
                _judge_set(unit, [picture(Path(tmp), d["image"]) for d in unit["diversity"]])
    return units, seconds


def _judge_set(unit: dict, pictures: list[np.ndarray]) -> None:
    """Give a unit the mean shares of its diversity set, the first of them as its picture."""
    registry = load_registry()
    stack = np.stack(pictures).astype(np.float32) / 255
    targets = [unit["channel"]] * len(pictures)
    for field, model in (("judged_share", "shapes/judge"), ("predicted_share", "shapes/unet")):
        unit[field] = float(judge_shares(registry.load_model(model), stack, targets).mean())
    unit["pixels"] = pictures[0]


def sheet(rows: dict[str, list[list[np.ndarray]]], out: Path, scale: int = 2) -> None:
    """Write one row per setting: each class's seeds side by side, classes apart."""
    lines = []
    for per_class in rows.values():
        blocks = [np.concatenate(seeds, 1) for seeds in per_class]
        gap = np.full((blocks[0].shape[0], 6, 3), 255, np.uint8)
        line = np.concatenate([x for b in blocks for x in (b, gap)][:-1], 1)
        lines += [line, np.full((4, line.shape[1], 3), 255, np.uint8)]
    image = np.concatenate(lines[:-1], 0)
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(out), image[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])


def reference(readers: dict[str, ModelAdapter]) -> dict[str, dict]:
    """Return each reader's shares (by field name) of pictures that are the class: the
    data's top images, and frames packed with the class in the data's style."""
    images, labels = data.make_batch(np.random.default_rng(5), 3000)
    images = images.transpose(0, 2, 3, 1)
    makers = {"data: its 8 images with the most of the class": lambda c: _top(images, labels, c)}
    for radius in RADII:
        makers[f"drawn: the frame packed with the class, radius {radius} px"] = partial(
            _frames, radius=radius
        )
    rows = {}
    for name, make in makers.items():
        pictures = [make(c) for c in CLASSES]
        rows[name] = {
            field: [_share(model, p, c) for c, p in zip(CLASSES, pictures, strict=True)]
            for field, model in readers.items()
        }
    return rows


def _share(model: ModelAdapter, pictures: np.ndarray, cls: int) -> float:
    """Return the model's mean share of the pictures' pixels labelled the class."""
    return round(float(judge_shares(model, pictures, [cls] * len(pictures)).mean()), 3)


def _frames(cls: int, radius: int, n: int = 6) -> np.ndarray:
    """Return n packed frames of the class."""
    return np.stack([data.make_packed(np.random.default_rng(i), cls, radius) for i in range(n)])


def _top(images: np.ndarray, labels: np.ndarray, cls: int, n: int = 8) -> np.ndarray:
    """Return the n images with the largest share of the class."""
    return images[np.argsort(-(labels == cls).mean((1, 2)))[:n]]


def main() -> None:
    torch.set_num_threads(2)
    registry = load_registry()
    judge, own = registry.load_model("shapes/judge"), registry.load_model("shapes/unet")
    references, rows = reference({"judged_share": judge, "own_share": own}), {}
    for name, row in references.items():
        row["judged_over_half"] = int((np.array(row["judged_share"]) > 0.5).sum())
        print(_line(name, row), flush=True)
    for radius in RADII:  # the drawn frames head the sheet
        rows[f"drawn {radius}"] = [
            [_uint8(frame) for frame in _frames(c, radius, len(SEEDS))] for c in CLASSES
        ]
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        spectrum = write_spectrum(
            None, Path(tmp) / "shapes.npy", 64, dataset_images(load_dataset(), 1000)
        )
        wanted = settings(spectrum)
        chosen = sys.argv[1:] or list(wanted)
        table = {}
        for name in chosen:
            per_seed = [run(name, wanted[name], cache, seed) for seed in SEEDS]
            classes = [u["label"] for u in per_seed[0][0]]
            judged = np.array([[u["judged_share"] for u in units] for units, _ in per_seed])
            own = np.array([[u["predicted_share"] for u in units] for units, _ in per_seed])
            table[name] = {
                "keys": {k: v for k, v in wanted[name].items() if k != "spectrum"},
                "classes": classes,
                "judged_share": judged.mean(0).round(3).tolist(),
                "own_share": own.mean(0).round(3).tolist(),
                "judged_over_half": int((judged.mean(0) > 0.5).sum()),
                "seconds_per_build": round(float(np.mean([s for _, s in per_seed])), 1),
            }
            rows[name] = [[units[c]["pixels"] for units, _ in per_seed] for c in range(6)]
            print(_line(name, table[name]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    suffix = "" if not sys.argv[1:] else "-" + "-".join(n.replace(" ", "_") for n in chosen)
    sheet(rows, RESULTS / f"transfer{suffix}.png")
    report = {
        "benchmark": "transfer",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "judge": "shapes/judge",
        "seeds": list(SEEDS),
        "demo": DEMO,
        "reference": references,
        "settings": table,
    }
    (RESULTS / f"transfer{suffix}.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {RESULTS / f'transfer{suffix}.json'}")


def _uint8(picture: np.ndarray) -> np.ndarray:
    """Return a [0, 1] picture as uint8."""
    return (picture * 255).round().astype(np.uint8)


def load_dataset():
    """Return the demo's validation set."""
    return load_registry().load_dataset("shapes/val")


def _line(name: str, row: dict) -> str:
    """Return one printed row: judged and own shares per class, in percent."""
    judged = " ".join(f"{100 * v:5.1f}" for v in row["judged_share"])
    own = " ".join(f"{100 * v:5.1f}" for v in row["own_share"])
    return (
        f"{name:20s} judge {judged} | own {own} | >50%: {row['judged_over_half']}/6 "
        f"| {row.get('seconds_per_build', '-')} s"
    )


if __name__ == "__main__":
    main()
