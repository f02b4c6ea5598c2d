"""Activation reached against steps, for the default learning rate and for schedules.

The work of bench/compare.py (a random-init ResNet-18, ``layer3``, 128 px, fp32 on CPU) with
fewer channels; for each schedule and step count, the mean activation of each channel on
its final picture (no transforms), and lucent's at 512 steps as the mark to reach (when
lucent is installed: run it in .venv-bench). Writes bench/results/steps-DEVICE.json and a
sheet of the first channel's pictures (rows: schedules, columns: steps) to look at.

    .venv-bench/bin/python bench/steps.py [--channels 4] [--steps 32 64 128 256]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from build_demo import machine  # noqa: E402
from compare import CPU, Work, activation, lucent_batched  # noqa: E402

SCHEDULES = {  # name: render keys
    "adam lr 0.05 (the default)": {"lr": 0.05},
    "adam lr 0.1": {"lr": 0.1},
    "adam lr 0.1, cosine decay": {"lr": 0.1, "lr_schedule": "cosine"},
    "adam lr 0.2, cosine decay": {"lr": 0.2, "lr_schedule": "cosine"},
}
LUCENT_STEPS = 512


def run_feature_atlas(work: Work, keys: dict) -> np.ndarray:
    """Render the work's channels with feature-atlas and the given render keys."""
    from atlas.adapter import ModelAdapter
    from atlas.objectives import Channel
    from atlas.plugins import load_registry
    from atlas.render import RenderSettings, render, resolve

    registry = load_registry()
    adapter = ModelAdapter(work.module, "torchvision/bench", "bench-random")
    settings = resolve(
        RenderSettings(size=(work.size, work.size), steps=work.steps, **keys), registry
    )
    seeds = range(len(work.channels))
    objective = Channel(work.layer, work.channels)
    return render(adapter, objective, seeds, settings, registry, work.device, None, "fp32").images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--steps", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    import torchvision

    torch.manual_seed(0)
    module = getattr(torchvision.models, CPU["model"])().eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    device = torch.device(args.device)
    channels = list(range(args.channels))
    reached: dict[str, dict[int, float]] = {}
    seconds: dict[str, dict[int, float]] = {}
    sheet = []
    for name, keys in SCHEDULES.items():
        reached[name], seconds[name], row = {}, {}, []
        for steps in args.steps:
            work = Work(module, CPU["layer"], channels, CPU["size"], steps, device)
            start = time.perf_counter()
            pictures = run_feature_atlas(work, keys)
            seconds[name][steps] = round(time.perf_counter() - start, 2)
            reached[name][steps] = round(activation(work, pictures), 3)
            row.append(pictures[0])
            print(f"{name}, {steps} steps: {reached[name][steps]}", file=sys.stderr)
        sheet.append(np.concatenate(row, 1))
    mark = None
    try:
        work = Work(module, CPU["layer"], channels, CPU["size"], LUCENT_STEPS, device)
        mark = round(activation(work, lucent_batched(work)), 3)
    except ImportError:
        print("lucent is not installed here: no mark to reach", file=sys.stderr)
    report = {
        "benchmark": "steps",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {**machine(), "device": str(device)},
        "work": {**CPU, "channels": args.channels, "steps": args.steps, "precision": "fp32"},
        f"lucent_{LUCENT_STEPS}_steps": mark,
        "reached": reached,
        "seconds": seconds,
    }
    print(f"{'schedule':36s} " + " ".join(f"{s:>7d}" for s in args.steps))
    for name in SCHEDULES:
        print(f"{name:36s} " + " ".join(f"{reached[name][s]:7.3f}" for s in args.steps))
    print(f"lucent batched, {LUCENT_STEPS} steps: {mark}")
    out = HERE / "results" / f"steps-{device.type}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    image = (np.concatenate(sheet, 0) * 255).round().astype(np.uint8)
    cv2.imwrite(str(out.with_suffix(".png")), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
