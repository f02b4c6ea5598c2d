"""Make the README's pictures from a built demo atlas: screenshots of its pages in headless
Chromium (docs/images/demo-atlas.png), a sheet of the output layer's class pictures with
their masked dataset examples (docs/images/demo-pictures.png), and the activation atlas of
`mid` with one cell hovered (docs/images/demo-map.png).

    make demo && .venv/bin/python docs/make_pictures.py site/shapes
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

IMAGES = Path(__file__).parent / "images"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOW_ALL = """async () => {
  for (let y = 0; y <= document.body.scrollHeight; y += 300) {
    window.scrollTo(0, y);
    await new Promise((r) => setTimeout(r, 40));
  }
  window.scrollTo(0, 0);
  await new Promise((r) => setTimeout(r, 300));
}"""
# (page, what to type in the search box or None, the part of the page to keep: top, height)
SHOTS = (
    ("index.html", None, 0, 760),
    ("layers/mid.html", None, 60, 760),
    ("units/output/1.html", None, 640, 760),
    ("layers/enc2.html", "checker", 0, 520),
)


def screenshots(site: Path, folder: Path) -> list[np.ndarray]:
    """Return screenshots of the demo's pages (1100 px wide)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        for i, (path, query, top, height) in enumerate(SHOTS):
            page.goto((site / path).as_uri())
            page.wait_for_load_state("load")
            page.evaluate(SHOW_ALL)
            if query:
                page.fill("#search", query)
                page.wait_for_selector("#search-results:not([hidden]) li")
                page.evaluate(SHOW_ALL.replace("window.scrollTo(0, y)", "0"))
            file = folder / f"{i}.png"
            page.screenshot(path=str(file), full_page=True)
            shot = cv2.imread(str(file))
            shots.append(shot[top : top + height])
        browser.close()
    return shots


def map_picture(site: Path) -> np.ndarray:
    """Return a screenshot of the map page, its fullest circle cell (or fullest) hovered."""
    from playwright.sync_api import sync_playwright

    manifest = json.loads((site / "manifest.json").read_text())
    cells = manifest["activation_atlas"]["mid"]["cells"]
    circles = [c for c in cells if c["class"] == "circle"] or cells
    chosen = max(circles, key=lambda c: c["count"])
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto((site / "maps" / "mid.html").as_uri())
        page.evaluate(SHOW_ALL)
        page.hover(f"#map .cell[data-index='{chosen['index']}']")
        page.wait_for_timeout(500)
        file = Path(tmp) / "map.png"
        page.screenshot(path=str(file), full_page=True)
        browser.close()
        shot = cv2.imread(str(file))
    return framed(shot[60:1240], 760)


def framed(shot: np.ndarray, width: int) -> np.ndarray:
    """Return a screenshot scaled to width with a thin grey frame."""
    h, w = shot.shape[:2]
    small = cv2.resize(shot, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
    return cv2.copyMakeBorder(small, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=(200, 200, 200))


def atlas_picture(site: Path) -> np.ndarray:
    """Return the four screenshots side by side in two rows."""
    with tempfile.TemporaryDirectory() as tmp:
        shots = [framed(s, 540) for s in screenshots(site, Path(tmp))]
    rows = []
    for pair in (shots[:2], shots[2:]):
        height = max(s.shape[0] for s in pair)
        padded = [cv2.copyMakeBorder(s, 0, height - s.shape[0], 0, 0, cv2.BORDER_CONSTANT,
                                     value=(255, 255, 255)) for s in pair]  # fmt: skip
        gap = np.full((height, 12, 3), 255, np.uint8)
        rows.append(np.hstack([padded[0], gap, padded[1]]))
    gap = np.full((12, rows[0].shape[1], 3), 255, np.uint8)
    return np.vstack([rows[0], gap, rows[1]])


def cell(site: Path, record: dict, size: int) -> np.ndarray:
    """Return one picture of a record (a full image, or a box of a strip), masked
    examples drawn over black, scaled to size."""
    pixels = cv2.imread(str(site / record["image"]), cv2.IMREAD_UNCHANGED)
    if "box" in record:
        x, y, w, h = record["box"]
        pixels = pixels[y : y + h, x : x + w]
    if pixels.shape[2] == 4:
        pixels = (pixels[..., :3] * (pixels[..., 3:] / 255.0)).astype(np.uint8)
    return cv2.resize(pixels, (size, size), interpolation=cv2.INTER_NEAREST)


def pictures_sheet(site: Path, size: int = 112, examples: int = 5) -> np.ndarray:
    """Return a row per class of the output layer: its picture, then its top examples."""
    manifest = json.loads((site / "manifest.json").read_text())
    output = next(layer for layer in manifest["layers"] if layer["name"] == "output")
    rows = []
    for unit in output["units"][1:]:
        cells = [cell(site, unit, size)]
        cells += [cell(site, e, size) for e in unit["examples"][:examples]]
        row = np.hstack([np.pad(c, ((4, 4), (4, 4), (0, 0)), constant_values=255) for c in cells])
        label = np.full((24, row.shape[1], 3), 255, np.uint8)
        text = f"{unit['label']}: picture, then the top dataset examples with the unit's mask"
        cv2.putText(label, text, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (60, 60, 60), 1,
                    cv2.LINE_AA)  # fmt: skip
        rows.append(np.vstack([label, row]))
    return np.vstack(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, nargs="?", default=Path("site/shapes"))
    args = parser.parse_args()
    IMAGES.mkdir(exist_ok=True)
    site = args.site.resolve()
    save(IMAGES / "demo-atlas.png", atlas_picture(site), colours=256)  # screenshots: a palette
    save(IMAGES / "demo-pictures.png", pictures_sheet(site))
    save(IMAGES / "demo-map.png", map_picture(site), colours=256)


def save(path: Path, picture: np.ndarray, colours: int = 0) -> None:
    """Write a picture as PNG, with a palette of that many colours if given (smaller)."""
    from PIL import Image

    image = Image.fromarray(cv2.cvtColor(picture, cv2.COLOR_BGR2RGB))
    if colours:
        image = image.quantize(colours, Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    image.save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
