"""The same work in feature-atlas, lucent and torch-dreams, interleaved in one process.

One randomly initialised torchvision ResNet (the same weights for every tool), one layer,
the same channels, canvas and steps; each tool's own defaults otherwise. Per tool: seconds
per channel (median over rounds), peak memory, the activation reached (mean of the target
channel on the final picture, no transforms, fp32), the ratio to feature-atlas, a sheet of
each tool's pictures of channels 0 and 1 (one row per tool, in table order), and the
FLOP floor: the FLOPs of the least work (forward and input-gradient of the network up to
the layer on feature-atlas's padded canvas) divided by the conv rate measured in this run.
Two "plain loop" rows time that least work itself, as a practical floor: the folded model
(channels-last, fp32 or bf16) forward to the layer and backward to a padded pixel canvas,
an Adam step, nothing else (no parameterization, transforms or regularizers, so its
pictures are not pictures anyone would want).

    make compare                 # creates .venv-bench, runs this, writes bench/results/
    python bench/compare.py --rounds 3 [--device cuda] [--quick]

lucent and torch-dreams live only in the benchmark environment (``make compare`` installs
them there); lucent's notebook import of IPython is met by ``bench/stand_ins``.
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from build_demo import machine  # noqa: E402

CPU = {"model": "resnet18", "layer": "layer3", "channels": 8, "size": 128, "steps": 128}
CUDA = {"model": "resnet50", "layer": "layer3", "channels": 32, "size": 224, "steps": 64}
PAD = 24  # feature-atlas's standard transforms pad the canvas by 12 on each side


@dataclass
class Work:
    """What every tool is asked to do."""

    module: torch.nn.Module
    layer: str
    channels: list[int]
    size: int
    steps: int
    device: torch.device


Tool = Callable[[Work], np.ndarray]  # returns the final pictures, (B, H, W, 3) in [0, 1]


def feature_atlas(precision: str = "auto", model_size: int | None = None) -> Tool:
    """Render every channel in one batch with feature-atlas's engine and defaults."""
    from atlas.engine.objectives import Channel
    from atlas.models.adapter import ModelAdapter
    from atlas.pipeline.worker import render_batch as render
    from atlas.recipe import RenderSettings
    from atlas.registry import load_registry

    registry = load_registry()

    def run(work: Work) -> np.ndarray:
        adapter = ModelAdapter(work.module, "torchvision/bench", "bench-random")
        settings = RenderSettings(
            size=(work.size, work.size),
            steps=work.steps,
            model_size=(model_size, model_size) if model_size else None,
        )
        objective = Channel(work.layer, work.channels)
        seeds = range(len(work.channels))
        result = render(adapter, objective, seeds, settings, registry, work.device, None, precision)
        return result.images

    return run


def plain_loop(precision: str) -> Tool:
    """The least work a step can do: the folded model forward to the layer and backward to
    a padded pixel canvas, then an Adam step; the same channel per image as the tools."""
    from atlas.models.adapter import ModelAdapter
    from atlas.models.frozen import run_copy
    from atlas.models.layers import Probe

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]

    def run(work: Work) -> np.ndarray:
        adapter = ModelAdapter(work.module, "torchvision/bench", "bench-random")
        runner = run_copy(adapter, [work.layer], dtype, work.device)
        runner.module.to(work.device)
        n, side = len(work.channels), work.size + PAD
        generator = torch.Generator().manual_seed(0)
        canvas = 0.5 + 0.01 * torch.randn(n, 3, side, side, generator=generator)
        canvas = canvas.to(work.device).requires_grad_(True)
        optimizer = torch.optim.Adam([canvas], lr=0.05)
        rows = torch.arange(n, device=work.device)
        index = torch.tensor(work.channels, device=work.device)
        with Probe(runner, [work.layer]) as probe:
            for _ in range(work.steps):
                view = canvas.to(dtype).contiguous(memory_format=torch.channels_last)
                act = probe(view)[work.layer]
                loss = -act[rows, index].float().mean((1, 2)).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        inner = canvas.detach()[
            ..., PAD // 2 : PAD // 2 + work.size, PAD // 2 : PAD // 2 + work.size
        ]
        return inner.clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()

    return run


def _lucent():
    try:
        import IPython.display  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(HERE / "stand_ins"))
    from lucent.optvis import objectives, param, render

    return objectives, param, render


def lucent_batched(work: Work) -> np.ndarray:
    """One render_vis call, one image per channel (lucent's batch objectives)."""
    objectives, param, render = _lucent()
    work.module.to(work.device)
    objective = objectives.channel(work.layer, work.channels[0], batch=0)
    for i, c in enumerate(work.channels[1:], start=1):
        objective = objective + objectives.channel(work.layer, c, batch=i)
    images = render.render_vis(
        work.module,
        objective,
        lambda: param.image(work.size, batch=len(work.channels)),
        thresholds=(work.steps,),
        show_image=False,
        progress=False,
    )
    return images[-1]


def lucent_default(work: Work) -> np.ndarray:
    """Lucent as its README uses it: one render_vis call per channel."""
    objectives, param, render = _lucent()
    work.module.to(work.device)
    pictures = [
        render.render_vis(
            work.module,
            objectives.channel(work.layer, c),
            lambda: param.image(work.size),
            thresholds=(work.steps,),
            show_image=False,
            progress=False,
        )[-1]
        for c in work.channels
    ]
    return np.concatenate(pictures)


def torch_dreams_batched(work: Work) -> np.ndarray:
    """torch-dreams's batched image parameter and objective, its default settings."""
    from torch_dreams import Dreamer
    from torch_dreams.batched_image_param import BatchedAutoImageParam
    from torch_dreams.batched_objective import BatchedObjective

    dreamer = Dreamer(work.module, quiet=True, device=str(work.device))
    params = BatchedAutoImageParam(
        batch_size=len(work.channels), height=work.size, width=work.size, device=str(work.device)
    )
    objective = BatchedObjective(
        [lambda outputs, c=c: -outputs[0][:, c].mean() for c in work.channels]
    )
    layer = work.module.get_submodule(work.layer)
    result = dreamer.render(
        layers=[layer], image_parameter=params, iters=work.steps, custom_func=objective
    )
    pictures = torch.cat([p.postprocess(device=str(work.device)) for p in result.image_params])
    return pictures.detach().permute(0, 2, 3, 1).cpu().numpy()


def activation(work: Work, pictures: np.ndarray) -> float:
    """Return the mean, over channels, of each channel's mean on its own final picture."""
    return float(np.mean(activations(work, pictures)))


def activations(work: Work, pictures: np.ndarray) -> list[float]:
    """Return each channel's mean on its own final picture (fp32, no transforms)."""
    x = torch.from_numpy(np.ascontiguousarray(pictures)).float().permute(0, 3, 1, 2)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    seen = {}
    layer = work.module.get_submodule(work.layer)
    handle = layer.register_forward_hook(lambda _m, _a, out: seen.setdefault("out", out))
    try:
        with torch.no_grad():
            work.module.to(work.device)(
                (x.to(work.device) - mean.to(work.device)) / std.to(work.device)
            )
    finally:
        handle.remove()
    acts = seen["out"].float().mean((2, 3)).cpu()
    return [float(acts[i, c]) for i, c in enumerate(work.channels)]


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in [
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        ]
    ]


class PeakMemory:
    """Peak memory a block adds: the CUDA allocator's peak, or on CPU the bytes malloc has
    handed out and not taken back (glibc's mallinfo2, sampled; unlike the resident set it
    does not hide what a block allocates in memory an earlier block freed)."""

    def __init__(self, device: torch.device):
        self.device, self.peak, self._stop = device, 0, threading.Event()

    @staticmethod
    def _rss() -> int:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
        return info.uordblks + info.hblkhd

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        self.base = self.peak = self._rss()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self.thread.join()
            self.peak = max(self.peak, self._rss())

    @property
    def megabytes(self) -> float:
        return round((self.peak - self.base) / 2**20, 1)


def conv_rate(device: torch.device, dtype: torch.dtype = torch.float32) -> float:
    """Measure this machine's convolution throughput in FLOP/s (a ResNet-like 3x3 conv)."""
    conv = torch.nn.Conv2d(256, 256, 3, padding=1).to(device, dtype)
    x = torch.rand(8, 256, 28, 28, device=device, dtype=dtype)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        conv(x)
    flops = counter.get_total_flops()
    times = []
    with torch.no_grad():
        for _ in range(6):
            start = time.perf_counter()
            conv(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return flops / statistics.median(times[1:])


def floor_flops(work: Work) -> float:
    """Count the FLOPs of one image-step of the least work: the forward up to the layer and
    the backward to the input, on the padded canvas."""
    trunk = copy.deepcopy(work.module).to(work.device)
    layer = trunk.get_submodule(work.layer)

    class Stop(Exception):
        pass

    def stop(_m, _a, out):
        raise Stop(out)

    handle = layer.register_forward_hook(stop)
    side = work.size + PAD
    x = torch.rand(1, 3, side, side, device=work.device, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        try:
            trunk(x)
        except Stop as caught:
            caught.args[0].mean().backward()
    handle.remove()
    return counter.get_total_flops()


def tools(device: torch.device) -> dict[str, Tool]:
    """Return the tools to time, feature-atlas in fp32 (the base of the ratios) first."""
    found = {
        "feature-atlas fp32": feature_atlas("fp32"),
        "feature-atlas bf16": feature_atlas("bf16"),
        "feature-atlas fp32 at 224 (old default)": feature_atlas("fp32", model_size=224),
    }
    found["lucent batched"] = lucent_batched
    found["lucent default (1 channel/call)"] = lucent_default
    found["torch-dreams batched"] = torch_dreams_batched
    found["plain loop fp32 (least work)"] = plain_loop("fp32")
    found["plain loop bf16 (least work)"] = plain_loop("bf16")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="a quarter of the steps, 1 round")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    config = dict(CUDA if device.type == "cuda" else CPU)
    if args.quick:
        config["steps"] //= 4
        args.rounds = 1
    import torchvision

    torch.manual_seed(0)
    module = getattr(torchvision.models, config["model"])().eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    work = Work(
        module,
        config["layer"],
        list(range(config["channels"])),
        config["size"],
        config["steps"],
        device,
    )
    names = list(tools(device))
    runs = tools(device)
    seconds = {n: [] for n in names}
    memory, reached, last = {}, {}, {}
    lucent_default_channels = work.channels[:2]  # it pays a whole call per channel
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
            this = work
            if name.startswith("lucent default"):
                this = Work(**{**work.__dict__, "channels": lucent_default_channels})
            this.module = copy.deepcopy(module)
            with PeakMemory(device) as peak:
                start = time.perf_counter()
                pictures = runs[name](this)
                last[name] = pictures
                if device.type == "cuda":
                    torch.cuda.synchronize()
                elapsed = time.perf_counter() - start
            seconds[name].append(elapsed / len(this.channels))
            memory[name] = max(memory.get(name, 0), peak.megabytes)
            reached[name] = activations(Work(**{**this.__dict__, "module": module}), pictures)
            print(f"round {r + 1} {name}: {seconds[name][-1]:.3f} s/channel", file=sys.stderr)
    rate = conv_rate(device)
    floor = floor_flops(work) * work.steps / rate
    base = statistics.median(seconds[names[0]])
    few = len(lucent_default_channels)  # every tool's activation on the channels all did
    rows = {
        name: {
            "seconds_per_channel": round(statistics.median(seconds[name]), 4),
            "all_rounds": [round(s, 4) for s in seconds[name]],
            "ratio_to_feature_atlas": round(statistics.median(seconds[name]) / base, 2),
            "peak_memory_mb": memory[name],
            "activation_reached": round(float(np.mean(reached[name])), 3),
            "activation_reached_first_channels": round(float(np.mean(reached[name][:few])), 3),
            "times_the_flop_floor": round(statistics.median(seconds[name]) / floor, 1),
        }
        for name in names
    }
    report = {
        "benchmark": "compare",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {**machine(), "device": _device_name(device)},
        "work": {
            **config,
            "rounds": args.rounds,
            "lucent_default_channels": len(lucent_default_channels),
        },
        "conv_rate_tflops": round(rate / 1e12, 3),
        "flop_floor_seconds_per_channel": round(floor, 4),
        "tools": rows,
    }
    _print(report)
    out = (
        args.out or HERE / "results" / f"compare-{device.type}{'-quick' if args.quick else ''}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    write_sheet(out.with_suffix(".png"), [last[name] for name in names], config["size"])
    print(f"wrote {out} and {out.with_suffix('.png')}")


def write_sheet(path: Path, rows: list[np.ndarray], size: int) -> None:
    """Save each tool's last pictures as one row (channels 0-1 for every tool), to look at."""
    import cv2

    strips = []
    for pictures in rows:
        tiles = [cv2.resize(np.asarray(p, np.float32), (size, size)) for p in pictures[:2]]
        strips.append(np.concatenate(tiles, 1))
    image = (np.clip(np.concatenate(strips, 0), 0, 1) * 255).round().astype(np.uint8)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def _print(report: dict) -> None:
    """Print the results as a table."""
    work = report["work"]
    print(
        f"{work['model']} {work['layer']}, {work['channels']} channels, {work['size']} px, "
        f"{work['steps']} steps, {work['rounds']} rounds on {report['machine']['device']} "
        f"({report['machine']['cpu']}, {report['machine']['torch_threads']} threads); "
        f"FLOP floor {report['flop_floor_seconds_per_channel']} s/channel at "
        f"{report['conv_rate_tflops']} TFLOP/s"
    )
    columns = ("s/channel", "ratio", "peak MB", "reached", "ch 0-1", "x floor")
    print(f"{'tool':40s} " + " ".join(f"{c:>9s}" for c in columns))
    for name, row in report["tools"].items():
        print(
            f"{name:40s} {row['seconds_per_channel']:9.3f} {row['ratio_to_feature_atlas']:9.2f} "
            f"{row['peak_memory_mb']:9.0f} {row['activation_reached']:9.3f} "
            f"{row['activation_reached_first_channels']:9.3f} "
            f"{row['times_the_flop_floor']:9.1f}"
        )


if __name__ == "__main__":
    main()
