"""Does torch.compile pay off for feature-atlas's optimisation step? Eager against compiled.

The step as the engine runs it (the frozen, folded copy in the engine's dtype, channels-last,
the layer read through a Probe that stops the forward after it, the backward to the
picture), on one fixed batch, without the transforms and the parameterization around it.
Prints and writes seconds per image-step for each, the compile time and the largest
difference between the two gradients; on CPU the engine stays eager (slower compiled).

    python bench/compile_probe.py [--device cuda] [--batch 64] [--size 224]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from build_demo import machine  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(step, x0: torch.Tensor, rounds: int) -> tuple[float, float, torch.Tensor]:
    """Return the first call's seconds, the median of the next rounds, and the gradient."""
    device = x0.device
    times, grad = [], None
    for _ in range(rounds + 1):
        x = x0.clone().requires_grad_(True)
        _sync(device)
        start = time.perf_counter()
        step(x).backward()
        _sync(device)
        times.append(time.perf_counter() - start)
        grad = x.grad
    return times[0], statistics.median(times[1:]), grad


def main() -> None:
    from atlas.engine.precision import compute_dtype
    from atlas.engine.render import model_input
    from atlas.models.adapter import ModelAdapter
    from atlas.models.frozen import run_copy
    from atlas.models.layers import Probe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--layer", default="layer3")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224, help="canvas; the view is 24 px more")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    import torchvision

    device = torch.device(args.device)
    torch.manual_seed(0)
    module = getattr(torchvision.models, args.model)().eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    adapter = ModelAdapter(module, f"torchvision/{args.model}", "bench-random")
    dtype = compute_dtype("auto", device)
    runner = run_copy(adapter, [args.layer], dtype, device)
    side = args.size + 24
    x0 = torch.rand(args.batch, 3, side, side, device=device)
    rows = {}
    with Probe(runner, [args.layer]) as probe:

        def step(x: torch.Tensor) -> torch.Tensor:
            act = probe(model_input(runner, x).to(dtype))[args.layer]
            return act.float().mean((2, 3)).diagonal().sum()  # channel i of image i

        eager = timed(step, x0, args.rounds)
        start = time.perf_counter()
        compiled = timed(torch.compile(step), x0, args.rounds)
        compile_seconds = time.perf_counter() - start - compiled[1] * args.rounds
    scale = eager[2].abs().max().item()
    for name, (first, median, _) in (("eager", eager), ("compiled", compiled)):
        rows[name] = {
            "first_call_s": round(first, 3),
            "ms_per_image_step": round(median / args.batch * 1e3, 4),
        }
    report = {
        "benchmark": "compile_probe",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {**machine(), "device": str(device)},
        "work": {
            **{k: v for k, v in vars(args).items() if k != "out"},
            "dtype": str(dtype).removeprefix("torch."),
        },
        "compile_seconds": round(compile_seconds, 1),
        "speedup": round(
            rows["eager"]["ms_per_image_step"] / rows["compiled"]["ms_per_image_step"], 2
        ),
        "gradient_max_difference": (compiled[2] - eager[2]).abs().max().item() / max(scale, 1e-12),
        "steps": rows,
    }
    print(json.dumps(report, indent=1))
    out = args.out or HERE / "results" / f"compile-{device.type}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
