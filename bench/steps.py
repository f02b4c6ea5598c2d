"""Activation reached against steps, for the default learning rate and for schedules.

The work of bench/compare.py (a random-init ResNet-18, ``layer3``, 128 px, fp32 on CPU) with
fewer channels; for each schedule and step count, the mean activation of each channel on
its final picture (no transforms), and lucent's at 512 steps as the mark to reach (when
lucent is installed: run it in .venv-bench). Writes bench/results/steps-DEVICE.json and a
sheet of the first channel's pictures (rows: schedules, columns: steps) to look at.
Two schedules the engine does not offer (they measured no better) are tried by patching
it for their runs: coarse to fine (the model sees each view at half size for the first
half of the steps) and a calm start (no transforms for the first quarter of the steps).

    .venv-bench/bin/python bench/steps.py [--channels 4] [--steps 32 64 128 256]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from build_demo import machine  # noqa: E402
from compare import CPU, Work, activation, lucent_batched  # noqa: E402


class Experiment:
    """A schedule the engine does not offer, tried by patching the engine during a run."""

    share = 0.5  # of the steps that the schedule changes, from the start

    def __init__(self):
        self.step, self.until = 0, 0

    def on_step(self, step: int) -> None:
        self.step = step + 1

    @contextlib.contextmanager
    def patched(self, steps: int):
        self.step, self.until = 0, int(steps * self.share)
        target, name, original = self.target()
        setattr(target, name, self.wrap(original))
        try:
            yield
        finally:
            setattr(target, name, original)


class CoarseToFine(Experiment):
    """The model sees each view at half its size for the first half of the steps."""

    def target(self):
        from atlas.engine import render

        return render, "model_input", render.model_input

    def wrap(self, model_input):
        def smaller_first(adapter, image, model_size=None):
            if self.step < self.until and image.requires_grad:
                size = [side // 2 for side in image.shape[-2:]]
                image = F.interpolate(image, size=size, mode="bilinear", antialias=True)
            return model_input(adapter, image, model_size)

        return smaller_first


class CalmStart(Experiment):
    """No transforms (the canvas as it is) for the first quarter of the steps."""

    share = 0.25

    def target(self):
        from atlas.engine.transforms import TransformSchedule

        return TransformSchedule, "__call__", TransformSchedule.__call__

    def wrap(self, call):
        def calm_first(schedule, image, step):
            return image if step < self.until else call(schedule, image, step)

        return calm_first


SCHEDULES = {  # name: render keys, and an experiment patched in for the run
    "adam lr 0.05 (the default)": ({"lr": 0.05}, None),
    "adam lr 0.1": ({"lr": 0.1}, None),
    "adam lr 0.1, cosine decay": ({"lr": 0.1, "lr_schedule": "cosine"}, None),
    "adam lr 0.2, cosine decay": ({"lr": 0.2, "lr_schedule": "cosine"}, None),
    "coarse to fine (half size, first half)": ({"lr": 0.05}, CoarseToFine),
    "calm start (no transforms, first quarter)": ({"lr": 0.05}, CalmStart),
}
LUCENT_STEPS = 512


def run_feature_atlas(work: Work, keys: dict, experiment: Experiment | None) -> np.ndarray:
    """Render the work's channels with feature-atlas, the given render keys and experiment."""
    from atlas.engine.objectives import Channel
    from atlas.models.adapter import ModelAdapter
    from atlas.pipeline.worker import render_batch as render
    from atlas.recipe import RenderSettings
    from atlas.registry import load_registry

    registry = load_registry()
    adapter = ModelAdapter(work.module, "torchvision/bench", "bench-random")
    settings = RenderSettings(size=(work.size, work.size), steps=work.steps, **keys)
    seeds = range(len(work.channels))
    objective = Channel(work.layer, work.channels)
    on_step = experiment.on_step if experiment else None
    with experiment.patched(work.steps) if experiment else contextlib.nullcontext():
        result = render(adapter, objective, seeds, settings, registry, work.device, on_step, "fp32")
    return result.images


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
    for name, (keys, experiment) in SCHEDULES.items():
        reached[name], seconds[name], row = {}, {}, []
        for steps in args.steps:
            work = Work(module, CPU["layer"], channels, CPU["size"], steps, device)
            start = time.perf_counter()
            pictures = run_feature_atlas(work, keys, experiment() if experiment else None)
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
    print(f"{'schedule: reached (seconds)':42s} " + " ".join(f"{s:>14d}" for s in args.steps))
    for name in SCHEDULES:
        cells = [f"{reached[name][s]:7.3f} ({seconds[name][s]:4.1f})" for s in args.steps]
        print(f"{name:42s} " + " ".join(cells))
    print(f"lucent batched, {LUCENT_STEPS} steps: {mark}")
    out = HERE / "results" / f"steps-{device.type}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    image = (np.concatenate(sheet, 0) * 255).round().astype(np.uint8)
    cv2.imwrite(str(out.with_suffix(".png")), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
