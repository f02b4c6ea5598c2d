"""Helpers for end-to-end tests: run the real CLI and check a site's links."""

from __future__ import annotations

import copy
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import tomli_w

# The tiny recipe most end-to-end tests build, as data; recipe_toml() writes variations of it.
TINY = {
    "title": "Tiny shapes",
    "layers": ["output", "enc1"],
    "model": {"source": "shapes/unet"},
    "render": {"size": 32, "steps": 6},
    "run": {"batch_size": 8},
}
TINY_PICTURES = 16 + 7  # enc1's channels and output's classes

# Class names with markup in one of them: the site must show it as text.
LABELS = [
    "background",
    "circle",
    "square",
    "triangle",
    "horizontal stripes",
    "vertical stripes",
    "<script>window.pwned = 2</script>checkerboard",
]
# The one end-to-end recipe that uses every table: the session's shared build (conftest).
EVERY_TABLE = {
    **TINY,
    "model": {"source": "shapes/unet", "options": {"labels": LABELS}},
    "render": {**TINY["render"], "negative": True, "diversity": 2},
    "dataset": {"source": "shapes/val", "samples": 64, "top_k": 3},
    "connections": {"top": 4},
    "pictures": [
        {
            "name": "<script>window.pwned = 1</script> circle - square",
            "objective": "channel('output', 'circle') - channel('output', 'square', mask='left')",
        },
        {
            "name": "masked <b>",
            "objective": "channel('output', 'circle', mask='left') "
            "+ channel('output', 2, mask=[0.5, 0, 1, 1])",
            "steps": 5,
            "seed": 3,
        },
    ],
}
# The one end-to-end recipe with an activation atlas (UMAP's first import and compiling cost
# about 20 s a process): a map of mid, a visualised layer, so cells link to its units.
MAPPED = {
    **TINY,
    "layers": ["mid"],
    "dataset": {"source": "shapes/val", "samples": 64, "top_k": 2},
    "activation_atlas": {"layers": ["mid"], "points": 600, "grid": 5, "steps": 32},
}
# each unit: its picture, its negative and a diversity set of 2; then the composed pictures
EVERY_TABLE_PICTURES = TINY_PICTURES * (1 + 1 + 2) + 2


def recipe_toml(base: dict = TINY, **tables) -> str:
    """Return recipe TOML: base with each keyword merged in (a dict into its table, anything
    else replacing it; None removes it)."""
    data = copy.deepcopy(base)
    for key, value in tables.items():
        if value is None:
            data.pop(key, None)
        elif isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return tomli_w.dumps(data)


def atlas(
    *args: str, cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the installed ``atlas`` command and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "atlas", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def atlas_build(
    recipe: Path, root: Path, *extra: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``atlas build RECIPE`` with its site and cache under root."""
    out, cache = str(root / "site"), str(root / "cache")
    args = ("build", str(recipe), "--out", out, "--cache-dir", cache, "--quiet", *extra)
    return atlas(*args, env=env)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append(value)


def links(page: Path) -> list[str]:
    """Return every href and src of an HTML page."""
    parser = _Links()
    parser.feed(page.read_text("utf-8"))
    return parser.links


def broken_links(site: Path) -> list[str]:
    """Return 'page -> link' for each link that is absolute or points at nothing."""
    bad = []
    for page in site.rglob("*.html"):
        for link in links(page):
            parsed = urlparse(link)
            target = (page.parent / parsed.path).resolve()
            if parsed.scheme or parsed.netloc or link.startswith("/") or not target.exists():
                bad.append(f"{page.relative_to(site)} -> {link}")
    return bad


def assert_same_pictures(site: Path, other: Path) -> None:
    """Assert two builds of one recipe made the same pictures, up to the float rounding
    of other thread counts and batch sizes."""
    import json

    import cv2
    import numpy as np
    import pytest

    ours = json.loads((site / "manifest.json").read_text())
    theirs = json.loads((other / "manifest.json").read_text())
    for mine, first in zip(ours["layers"], theirs["layers"], strict=True):
        for a, b in zip(mine["units"], first["units"], strict=True):
            pa = cv2.imread(str(site / a["image"])).astype(float)
            pb = cv2.imread(str(other / b["image"])).astype(float)
            assert np.abs(pa - pb).mean() < 2.0, a["page"]
            assert a["objective_final"] == pytest.approx(b["objective_final"], rel=0.02, abs=0.01)


def plugin_env(root: Path, name: str, source: str) -> dict:
    """Install a one-module plugin (module + dist-info on a path entry) under root and
    return an environment whose Python finds it through its entry point ``name``."""
    import os

    site = root / "site-packages"
    dist = site / f"{name}_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[feature_atlas]\n{name} = {name}_plugin\n")
    (site / f"{name}_plugin.py").write_text(source)
    return {**os.environ, "PYTHONPATH": str(site)}
