"""Concept labels and search, measured: the dataset pass of the demo with and without concept
scoring (interleaved rounds), and the search index of a 15,008-unit synthetic atlas: its
size, and the time from typing to the first result in headless Chromium (from file://).

python bench/concepts.py     # prints tables, writes bench/results/concepts.json
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from build_demo import machine
from synthetic import manifest

from atlas.datasets.concepts import Concepts
from atlas.datasets.examples import run_pass
from atlas.recipe import load_recipe
from atlas.registry import load_registry
from atlas.site import write_site

RESULTS = Path(__file__).parent / "results" / "concepts.json"
ROUNDS = 2
QUERIES = ("dog", "stripes", "layer3.2.conv 12", "fc 7", "wheel window")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def demo_pass() -> dict:
    """Time the demo's dataset pass alone and with concept scoring, in interleaved rounds."""
    recipe = load_recipe()
    registry = load_registry()
    adapter = registry.load_model(recipe.model)
    dataset = registry.load_dataset(recipe.dataset.source)
    layers = ["enc2", "mid", "output"]
    seconds: dict[str, list[float]] = {"examples only": [], "examples + concepts": []}
    for _ in range(ROUNDS):
        for name in seconds:
            analyses = []
            if "concepts" in name:
                analysis = Concepts("pixel", dataset.classes, top_k=recipe.dataset.top_k)
                analyses = [(analysis, layers)]
            start = time.perf_counter()
            run_pass(adapter, dataset, layers, recipe.dataset.samples, recipe.dataset.top_k,
                     batch_size=64, analyses=analyses)  # fmt: skip
            seconds[name].append(time.perf_counter() - start)
    median = {k: round(statistics.median(v), 2) for k, v in seconds.items()}
    print(f"demo dataset pass ({recipe.dataset.samples} images, layers {', '.join(layers)})")
    for name, value in median.items():
        print(f"  {name:<22}{value:>7.2f} s")
    ratio = median["examples + concepts"] / median["examples only"]
    print(f"  concepts cost {ratio:.2f}x the pass alone")
    return {"samples": recipe.dataset.samples, "seconds": seconds, "median_seconds": median,
            "ratio": round(ratio, 2)}  # fmt: skip


def first_results(site: Path) -> dict[str, float]:
    """Return, per query, the seconds from typing into a freshly opened page to results."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    times = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page()
        for query in QUERIES:
            page.goto((site / "layers" / "layer1.0.conv.html").as_uri())
            page.wait_for_load_state("load")
            start = time.perf_counter()
            page.fill("#search", query)
            page.wait_for_selector("#search-results:not([hidden]) li")
            times[query] = round(time.perf_counter() - start, 3)
        browser.close()
    return times


def search_at_scale() -> dict:
    """Write the synthetic atlas's site; measure its search index and first results."""
    data = manifest()
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        start = time.perf_counter()
        write_site(data, {}, site)
        written = time.perf_counter() - start
        files = sorted((site / "search").glob("*.js"))
        sizes = {p.name: p.stat().st_size for p in files}
        times = first_results(site)
    shards = [v for k, v in sizes.items() if k.startswith("t-")]
    blocks = [v for k, v in sizes.items() if k.startswith("u-")]
    result = {
        "units": data["units_total"],
        "layers": len(data["layers"]),
        "site_seconds": round(written, 1),
        "files": len(sizes),
        "bytes_total": sum(sizes.values()),
        "index_js_bytes": sizes["index.js"],
        "largest_word_shard_bytes": max(shards),
        "largest_unit_block_bytes": max(blocks),
        "first_result_seconds": times,
    }
    print(f"search index of {result['units']} units in {result['layers']} layers:")
    print(f"  {result['files']} files, {result['bytes_total'] / 1e6:.2f} MB in all; "
          f"index.js {result['index_js_bytes'] / 1e3:.1f} kB, largest word shard "
          f"{result['largest_word_shard_bytes'] / 1e3:.1f} kB, largest unit block "
          f"{result['largest_unit_block_bytes'] / 1e3:.1f} kB")  # fmt: skip
    for query, seconds in times.items():
        print(f"  first result for {query!r:<22}{seconds * 1000:>7.0f} ms")
    return result


def main() -> None:
    torch.set_num_threads(2)
    result = {
        "benchmark": "concepts",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "demo_pass": demo_pass(),
        "search": search_at_scale(),
    }
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
