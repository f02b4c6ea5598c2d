"""Time `atlas build` of the demo atlas with an empty cache, then with a full one.

python bench/build_demo.py          # prints a table, writes bench/results/build_demo.json
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results" / "build_demo.json"
GOAL_SECONDS = 90  # issue #9; it was 180 before


def timed_build(cache: Path, out: Path) -> tuple[float, str]:
    """Run the real CLI once; return wall seconds and its stderr summary line."""
    start = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "atlas",
            "build",
            "--quiet",
            "--cache-dir",
            str(cache),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - start, done.stderr.strip().splitlines()[-1]


def machine() -> dict:
    """Describe the machine the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def dataset_pass(cache: Path) -> tuple[float, int]:
    """Return the seconds the build's dataset pass took and the images it looked at."""
    meta = json.loads(next((cache / "examples").rglob("meta.json")).read_text())
    return meta["seconds"], meta["samples"]


def site_megabytes(out: Path) -> float:
    """Return the size of the built site in MB."""
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    """Build twice into a temporary cache and report both timings."""
    with tempfile.TemporaryDirectory() as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "site"
        cold, cold_note = timed_build(cache, out)
        passed, samples = dataset_pass(cache)
        warm, warm_note = timed_build(cache, out)
        size = site_megabytes(out)
    rows = [
        ("empty cache", cold, cold_note),
        ("full cache", warm, warm_note),
        (
            "dataset pass",
            passed,
            f"{samples} images, {samples / passed:.0f} images/s, "
            f"{passed / cold:.0%} of the cold build",
        ),
    ]
    print(f"{'demo build':<14}{'seconds':>9}  note")
    for name, seconds, note in rows:
        print(f"{name:<14}{seconds:>9.1f}  {note}")
    print(f"site: {size:.1f} MB")
    verdict = "meets" if cold < GOAL_SECONDS else "misses"
    print(f"goal: under {GOAL_SECONDS} s with an empty cache on 2 cores: {verdict} it")
    result = {
        "benchmark": "build_demo",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "goal_seconds": GOAL_SECONDS,
        "empty_cache_seconds": round(cold, 1),
        "full_cache_seconds": round(warm, 1),
        "dataset_pass_seconds": round(passed, 2),
        "dataset_pass_images": samples,
        "dataset_pass_images_per_second": round(samples / passed, 1),
        "dataset_pass_share_of_cold_build": round(passed / cold, 3),
        "site_megabytes": round(size, 2),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
