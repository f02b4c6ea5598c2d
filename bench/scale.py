"""Pictures per minute with 1 and 2 loky workers and a 2-worker Dask LocalCluster, on one
recipe, interleaved in rounds; plus the cost of planning and of a fully cached rebuild.

python bench/scale.py     # prints a table, writes bench/results/scale.json
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from build_demo import machine

RESULTS = Path(__file__).parent / "results" / "scale.json"
ROUNDS = 2
RECIPE = """
title = "scale benchmark"
layers = ["enc2"]
[model]
source = "shapes/unet"
[render]
size = 64
steps = 128
[run]
batch_size = 8
"""
CONFIGS = {
    "1 loky worker": ["--jobs", "1"],
    "2 loky workers": ["--jobs", "2"],
    "2-worker LocalCluster": ["--backend", "dask", "--jobs", "2"],
}
PICTURES = 32


def run(recipe: Path, cache: Path, out: Path, *args: str) -> float:
    """Run the real CLI once and return its wall seconds."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "atlas", "build", str(recipe), "-q"]
    command += ["--cache-dir", str(cache), "--out", str(out), *args]
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    """Time every configuration in interleaved rounds, each into an empty cache."""
    seconds: dict[str, list[float]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        recipe = root / "scale.toml"
        recipe.write_text(RECIPE)
        for r in range(ROUNDS):
            for name, args in CONFIGS.items():
                cache = root / f"cache-{r}-{len(seconds[name])}-{name.split()[0]}"
                seconds[name].append(run(recipe, cache, root / "site", *args))
        cache = root / "cache-0-0-1"
        dry = [run(recipe, cache, root / "site", "--dry-run") for _ in range(3)]
        cached = [run(recipe, cache, root / "site") for _ in range(3)]
    rows = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"{'configuration':<24}{'seconds':>9}{'pictures/min':>14}{'speed-up':>10}")
    base = rows["1 loky worker"]
    for name, value in rows.items():
        print(f"{name:<24}{value:>9.1f}{PICTURES / value * 60:>14.1f}{base / value:>9.2f}x")
    print(f"plan only (--dry-run, full cache): {statistics.median(dry):.1f} s")
    print(f"fully cached rebuild:              {statistics.median(cached):.1f} s")
    result = {
        "benchmark": "scale",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "recipe": RECIPE.strip(),
        "rounds": ROUNDS,
        "seconds": seconds,
        "median_seconds": {k: round(v, 2) for k, v in rows.items()},
        "pictures_per_minute": {k: round(PICTURES / v * 60, 1) for k, v in rows.items()},
        "dry_run_seconds": round(statistics.median(dry), 2),
        "cached_rebuild_seconds": round(statistics.median(cached), 2),
    }
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
