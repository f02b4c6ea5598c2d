"""The demo ViT (shapes/vit) with the default transforms and with the ViT preset
(``transforms = "vit"``): seconds per unit and activation reached for 16 MLP hidden units of
block 1, and its 7 class pictures judged by the ViT itself and by the U-Net (a second,
independent judge; for the decay 2.25 rows over 6 seeds too): the share of each picture's
pixels each labels as the class; and, for reference, how both read pictures that are the
class (bench/transfer.py's data images and drawn frames).

python bench/vit.py     # prints a table, writes bench/results/vit.json
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from build_demo import machine
from transfer import reference

import atlas
from atlas.registry import load_registry

RESULTS = Path(__file__).parent / "results" / "vit.json"
UNITS = 16
LAYER = "blocks.1.mlp.act"
ZOOM = {"zoom": [1.0, 1.5], "rotation": 15}  # the ViT preset, each copy also zoomed and turned
SEEDS = 6


def shares(judge, site: Path, output: dict) -> list[float]:
    """Return, per class picture, the share of its pixels the judge labels as its class."""
    found = []
    for unit in output["units"]:
        bgr = cv2.imread(str(site / unit["image"]))
        picture = torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            labels = judge.model_output(judge.module(judge.input.normalize(picture))).argmax(1)
        found.append(round(float((labels == unit["channel"]).float().mean()), 3))
    return found


def run(transforms, judge, **keys) -> dict:
    """Build the ViT's class pictures and UNITS MLP units with these transforms (and
    render keys)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        result = atlas.build(
            model="shapes/vit", layers=["output", LAYER], max_channels=UNITS, size=64,
            transforms=transforms, out_dir=folder / "site", **{"steps": 256, "lr": 0.05, **keys},
            cache_dir=folder / "cache", show_progress=False, weights="default",
        )  # fmt: skip
        seconds = time.perf_counter() - start
        metas = {p.stem: json.loads(p.read_text()) for p in (folder / "cache").glob("??/*.json")}
        layers = {x["name"]: x for x in result.manifest["layers"]}
        mlp, output = layers[LAYER], layers["output"]
        spent = [metas[u["key"]]["seconds"] for u in mlp["units"] if u["key"] in metas]
        reached = [u["objective_final"] for u in mlp["units"]]
        return {
            "whole_build_seconds": round(seconds, 1),
            "mlp_seconds_per_unit": round(float(np.sum(spent)) / len(mlp["units"]), 2),
            "mlp_reached_median": round(float(np.median(reached)), 3),
            "class_share_by_vit": shares(result.plan.adapter, folder / "site", output),
            "class_share_by_unet": shares(judge, folder / "site", output),
            "classes": [u["label"] for u in output["units"]],
        }  # fmt: skip


def over_seeds(transforms, judge, seeds: int, **keys) -> dict:
    """Build the class pictures with seeds 0..seeds-1 (the pictures of one seed vary a lot)
    and return each seed's shares by the ViT and the U-Net, and their means."""
    found: dict[str, list] = {"by_vit": [], "by_unet": []}
    for seed in range(seeds):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            result = atlas.build(
                model="shapes/vit", layers=["output"], size=64, seed=seed,
                transforms=transforms, out_dir=folder / "site", cache_dir=folder / "cache",
                show_progress=False, weights="default", **{"steps": 256, "lr": 0.05, **keys},
            )  # fmt: skip
            (output,) = result.manifest["layers"]
            found["by_vit"].append(shares(result.plan.adapter, folder / "site", output))
            found["by_unet"].append(shares(judge, folder / "site", output))
    means = {f"mean_{k}": np.mean(v, 0).round(3).tolist() for k, v in found.items()}
    return {"seeds": seeds, **found, **means}


def main() -> None:
    torch.set_num_threads(2)
    registry = load_registry()
    judge = registry.load_model("shapes/unet")
    result = {
        "benchmark": "vit",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "default": run(True, judge),
        "vit_preset": run("vit", judge),
        "vit_preset_decay_2": run("vit", judge, decay=2.0, lr=0.02),  # the U-Net demo's
        # the setting whose shape pictures the U-Net reads most while the ViT keeps its own
        "vit_preset_decay_2.25_512": run("vit", judge, decay=2.25, steps=512),
        # the same with each copy also zoomed in 1-1.5x and turned up to ±15 degrees
        "vit_zoom_decay_2.25_512": run(ZOOM, judge, decay=2.25, steps=512),
        "over_seeds": {
            "vit_preset_decay_2.25_512": over_seeds("vit", judge, SEEDS, decay=2.25, steps=512),
            "vit_zoom_decay_2.25_512": over_seeds(ZOOM, judge, SEEDS, decay=2.25, steps=512),
        },
        # pictures that *are* the class (bench/transfer.py): how the ViT and the U-Net read them
        "reference": reference({"by_vit": registry.load_model("shapes/vit"), "by_unet": judge}),
    }
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    rows = ("default", "vit_preset", "vit_preset_decay_2")
    for name in (*rows, "vit_preset_decay_2.25_512", "vit_zoom_decay_2.25_512"):
        r = result[name]
        print(
            f"{name}: {r['mlp_seconds_per_unit']} s/unit, median reached {r['mlp_reached_median']}"
        )
        print(f"  class shares by the ViT  {r['class_share_by_vit']}")
        print(f"  class shares by the U-Net {r['class_share_by_unet']}")
    for name, found in result["over_seeds"].items():
        print(f"{name}, class pictures of {found['seeds']} seeds, mean shares:")
        print(f"  by the ViT {found['mean_by_vit']}\n  by the U-Net {found['mean_by_unet']}")
    for name, shares_ in result["reference"].items():
        print(f"{name}: foreground shares by the ViT {shares_['by_vit']}")
        print(f"  by the U-Net {shares_['by_unet']}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
