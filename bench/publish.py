"""Publishing an exhaustive atlas, measured through the real `atlas build`: a cheap model of
28 layers x 512 channels (14,336 units), 8 px pictures, 2 steps, 9 dataset examples a unit.
Cold build, rebuild with everything cached, a rebuild after one layer's labels changed, the
files and bytes of the site, and the biggest layer page's first load in headless Chromium;
then the bytes per unit of one 512-unit layer at 128 px. The model comes from a plugin
written into a temporary folder (no code of it is committed elsewhere).

    python bench/publish.py                       # this checkout: writes results[after]
    python bench/publish.py --code DIR --label before   # another checkout of the project
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from build_demo import machine

RESULTS = Path(__file__).parent / "results" / "publish.json"
PLUGIN = '''
import torch
from torch import nn
from atlas.plugin import InputSpec, ModelAdapter, ModelSource, hookimpl

class Wide(nn.Module):
    """28 layers of 512 channels, grouped 3x3 convolutions: cheap, and a receptive field."""
    def __init__(self, stride=1):
        super().__init__()
        self.stem = nn.Conv2d(3, 512, 1, stride=stride)
        for i in range(28):
            self.add_module(f"l{i}", nn.Conv2d(512, 512, 3, padding=1, groups=64))
    def forward(self, x):
        x = torch.relu(self.stem(x))
        for i in range(28):
            x = torch.relu(getattr(self, f"l{i}")(x))
        return x.mean((2, 3))

def load(name, weights=None, size=8, stride=1, names=None, **options):
    torch.manual_seed(0)
    module = Wide(stride)
    labels = {"l5": list(names)} if names else {}  # names: labels of layer l5's units
    return ModelAdapter(module, "wide/net", "wide-seed-0", InputSpec(size=(size, size)),
                        labels=labels)

@hookimpl
def feature_atlas_register_models(register):
    register("wide", ModelSource(load=load, names=lambda: ["net"]))
'''
RECIPE = """
title = "wide"
layers = ["l*"]
[model]
source = "wide/net"
{options}
[render]
size = {size}
steps = {steps}
transforms = false
[run]
batch_size = 64
[dataset]
source = "shapes/val"
samples = 200
top_k = 9
"""
NO_CONCEPTS = "concepts = false\n"  # the same work as before concept labels existed
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def plugin_env(root: Path, code: Path | None) -> dict:
    """Install the model plugin under root; return the environment that finds it."""
    site = root / "site-packages"
    dist = site / "wide_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: wide-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[feature_atlas]\nwide = wide_plugin\n")
    (site / "wide_plugin.py").write_text(PLUGIN)
    path = [str(site)] + ([str(code)] if code else [])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def recipe_text(options: str, size: int, steps: int, new: bool) -> str:
    """Return the job's recipe (for this checkout, without concept labels)."""
    return RECIPE.format(options=options, size=size, steps=steps) + (NO_CONCEPTS if new else "")


def build(recipe: Path, root: Path, env: dict, *args: str) -> float:
    """Run `atlas build` and return its wall seconds."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "atlas", "build", str(recipe), "-q"]
    command += ["--out", str(root / "site"), "--cache-dir", str(root / "cache"), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    return time.perf_counter() - start


def site_stats(site: Path) -> dict:
    """Return the files and bytes of a site, and its biggest layer page."""
    files = [p for p in site.rglob("*") if p.is_file()]
    pages = sorted(site.glob("layers/*.html"), key=lambda p: p.stat().st_size)
    return {
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "manifest_bytes": (site / "manifest.json").stat().st_size,
        "biggest_layer_page": pages[-1].name,
        "biggest_layer_page_bytes": pages[-1].stat().st_size,
    }


def first_load(page_path: Path) -> dict:
    """Open a page in headless Chromium; return its load time, requests and bytes."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sizes: list[int] = []
        page.on("response", lambda r: sizes.append(len(r.body())))
        start = time.perf_counter()
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        seconds = time.perf_counter() - start
        page.wait_for_timeout(500)  # sprites that come into view after load
        browser.close()
    return {"seconds": round(seconds, 3), "requests": len(sizes), "bytes": sum(sizes)}


def changed(recipe: Path, root: Path, env: dict, text: str) -> tuple[float, list[str]]:
    """Rebuild with another recipe text; return the seconds and the files written or gone."""
    site = root / "site"
    before = {p: p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file()}
    recipe.write_text(text)
    seconds = build(recipe, root, env)
    after = {p: p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file()}
    moved = [p for p in {*before, *after} if before.get(p) != after.get(p)]
    return seconds, sorted(str(p.relative_to(site)) for p in moved)


def big_job(root: Path, env: dict, new: bool) -> dict:
    """The 14,336-unit job: cold build, cached rebuild, a one-layer change, the site."""
    root.mkdir(parents=True)
    recipe = root / "wide.toml"
    recipe.write_text(recipe_text("", 8, 2, new))
    cold = build(recipe, root, env)
    cached = [build(recipe, root, env) for _ in range(2)]
    stats = site_stats(root / "site")
    load = first_load(root / "site" / "layers" / "l27.html")
    names = "options = {names = [" + ", ".join(f'"u{i}"' for i in range(512)) + "]}"
    labelled, rewritten = changed(recipe, root, env, recipe_text(names, 8, 2, new))
    fewer = recipe_text(names, 8, 2, new).replace(
        'layers = ["l*"]', 'layers = ["l[0-9]", "l1*", "l2[0-6]"]'
    )
    removed, deleted = changed(recipe, root, env, fewer)
    units = 28 * 512
    return {
        "units": units,
        "cold_build_seconds": round(cold, 1),
        "cached_rebuild_seconds": round(min(cached), 1),
        "one_layer_labelled_seconds": round(labelled, 1),
        "one_layer_labelled_files_written": len(rewritten),
        "one_layer_labelled_files_sample": rewritten[:12],
        "one_layer_removed_seconds": round(removed, 1),
        "one_layer_removed_files_changed": len(deleted),
        **stats,
        "files_per_unit": round(stats["files"] / units, 2),
        "biggest_layer_page_first_load": load,
    }


def bytes_per_unit(root: Path, env: dict, new: bool) -> dict:
    """One 512-unit layer at 128 px with 9 examples: the site's picture bytes per unit, and
    what the PNGs of the format before (picture, thumbnail copy, 9 crops) add up to."""
    root.mkdir(parents=True)
    recipe = root / "one.toml"
    text = recipe_text("options = {size = 128, stride = 2}", 128, 8, new)
    text = text.replace('layers = ["l*"]', 'layers = ["l3"]').replace(
        "steps = 8", "steps = 8\nlr = 0.3"
    )
    recipe.write_text(text)
    build(recipe, root, env)
    site = root / "site"
    pictures = [p for p in site.rglob("*") if p.suffix in (".png", ".webp")]
    cache = root / "cache"
    old = 2 * sum(p.stat().st_size for p in cache.glob("??/*.png"))  # picture + its copy
    old += sum(p.stat().st_size for p in (cache / "examples").rglob("*.png"))
    return {
        "units": 512,
        "picture_bytes_per_unit": round(sum(p.stat().st_size for p in pictures) / 512),
        "png_format_bytes_per_unit": round(old / 512),
        "site_bytes_per_unit": round(site_stats(site)["bytes"] / 512),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, help="another checkout's folder to import atlas from")
    parser.add_argument("--label", default="after")
    parser.add_argument("--skip-bytes", action="store_true")
    parser.add_argument("--only-bytes", action="store_true", help="keep the stored big job's")
    args = parser.parse_args()
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine()}
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = plugin_env(root, args.code)
        new = args.code is None
        if args.only_bytes:
            result["big"] = stored[args.label]["big"]
        else:
            result["big"] = big_job(root / "big", env, new)
            save(args.label, result)
        if not args.skip_bytes:
            result["bytes"] = bytes_per_unit(root / "one", env, new)
            save(args.label, result)
    print(json.dumps(result, indent=1))


def save(label: str, result: dict) -> None:
    """Store one run's results under its label in bench/results/publish.json."""
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    stored[label] = result
    RESULTS.write_text(json.dumps(stored, indent=1) + "\n")


if __name__ == "__main__":
    main()
