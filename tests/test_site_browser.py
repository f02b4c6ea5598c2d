"""Open the built atlas in headless Chromium from disk and use it as a person would."""

import functools
import http.server
import json
import math
import os
import shutil
import threading

import cv2
import numpy as np
import pytest
from helpers import LABELS, atlas_build, recipe_toml

try:
    from playwright import sync_api as playwright
except ImportError:
    playwright = None
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MISSING = (
    "playwright is not installed"
    if playwright is None
    else "Debian's chromium is not installed"
    if CHROMIUM is None
    else None
)
# CI sets ATLAS_REQUIRE_BROWSER=1: there a missing browser fails the run instead of skipping.
REQUIRED = os.environ.get("ATLAS_REQUIRE_BROWSER") == "1"
pytestmark = [
    pytest.mark.e2e,  # the real atlas command, workers, a cluster or the browser
    pytest.mark.skipif(MISSING is not None and not REQUIRED, reason=str(MISSING)),
]
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def site(every_table):
    return every_table.site


@pytest.fixture(scope="module")
def page():
    if MISSING:
        pytest.fail(f"ATLAS_REQUIRE_BROWSER=1 but {MISSING}")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser.new_page(viewport={"width": 1100, "height": 900})
        browser.close()


SPRITE_WIDTHS = """async (selector) => {
  for (let y = 0; y <= document.body.scrollHeight; y += 300) {
    window.scrollTo(0, y);
    await new Promise((r) => setTimeout(r, 30));
  }
  const width = (url) => new Promise((r) => {
    const i = new Image(); i.onload = () => r(i.naturalWidth); i.onerror = () => r(0); i.src = url;
  });
  const shown = [...document.querySelectorAll(selector || ".sprite")]
    .filter((s) => s.offsetParent !== null);
  return Promise.all(shown.map((s) => {
    const url = /url\\("(.*)"\\)/.exec(s.style.backgroundImage);
    return url ? width(url[1]) : 0;
  }));
}"""


def loaded_images(page, selector: str = "") -> list[int]:
    """Return the width of every visible picture's file (0: not loaded), the page scrolled
    through so lazy pictures load (only sprites matching selector, if given)."""
    widths = page.evaluate(SPRITE_WIDTHS, selector or ".sprite")
    if selector:
        return widths
    script = "imgs => imgs.filter(i => !i.hidden).map(i => i.complete ? i.naturalWidth : 0)"
    return widths + page.eval_on_selector_all("img", script)


def settled(page) -> None:
    """Wait until the layer grid has drawn what its last filter or sort asked for."""
    page.wait_for_function("document.getElementById('grid').dataset.busy !== '1'")


def test_browse_from_index_to_unit(site, page):
    page.goto((site / "index.html").as_uri())
    assert page.title() == "Tiny shapes"
    page.click('a.layer-link:has-text("output")')
    assert page.url.endswith("/layers/output.html")
    page.wait_for_load_state("load")
    assert all(width > 0 for width in loaded_images(page))
    page.goto((site / "layers" / "enc1.html").as_uri())
    page.fill("#filter", "13")  # a number is that channel, not 1, 3 and 13
    settled(page)
    shown = page.eval_on_selector_all(".unit", "us => us.filter(u => !u.hidden).length")
    assert shown == 1 and page.inner_text("#count") == "1 of 16 channels"
    page.goto((site / "layers" / "output.html").as_uri())
    page.fill("#filter", "circle")
    settled(page)
    visible = page.eval_on_selector_all(".unit", "us => us.filter(u => !u.hidden).length")
    assert visible == 1
    assert page.inner_text("#count") == "1 of 7 channels"
    page.click(".unit:not([hidden])")
    assert page.url.endswith("/units/output/1.html")
    assert "circle" in page.inner_text("h1")
    assert page.eval_on_selector("img.picture", "i => i.naturalWidth") == 32
    page.click("a[rel=next]")
    assert page.url.endswith("/units/output/2.html")
    page.screenshot(path=str(site / "unit-screenshot.png"))


def test_sort_by_objective_reorders_the_grid(site, page):
    page.goto((site / "layers" / "enc1.html").as_uri())
    script = "us => us.map(u => parseFloat(u.dataset.objective))"
    before = page.eval_on_selector_all(".unit", script)
    page.select_option("#sort", "objective")
    settled(page)
    values = page.eval_on_selector_all(".unit", script)
    assert all(math.isfinite(v) for v in values) and len(set(values)) == len(values)
    assert values == sorted(values, reverse=True) and values != before


def test_composed_pictures_and_negatives_are_shown(site, page):
    page.goto((site / "index.html").as_uri())
    page.click('h2 a:has-text("Composed pictures")')
    assert page.url.endswith("/pictures.html")
    page.wait_for_load_state("load")
    assert all(width > 0 for width in loaded_images(page))
    caption = page.inner_text(".unit .caption")
    assert caption == "<script>window.pwned = 1</script> circle - square"
    assert page.evaluate("window.pwned") is None
    page.click(".unit")
    assert "/pictures/" in page.url
    assert page.eval_on_selector("img.picture", "i => i.naturalWidth") == 32
    assert "mask='left'" in page.inner_text("code.expression")
    page.goto((site / "units" / "output" / "1.html").as_uri())
    page.evaluate(SPRITE_WIDTHS, ".none")  # scroll through: the diversity set loads lazily
    widths = page.eval_on_selector_all("img.picture", "is => is.map(i => i.naturalWidth)")
    assert widths == [32] * 4  # its picture, its negative and a diversity set of 2
    assert "Negative" in page.inner_text(".negative figcaption")


def test_unit_page_shows_examples_and_labels_as_text(site, page):
    page.goto((site / "units" / "output" / "6.html").as_uri())
    page.wait_for_load_state("load")
    assert page.inner_text("h1").endswith(LABELS[6])
    assert page.evaluate("window.pwned") is None
    widths = loaded_images(page, ".example")
    assert widths == [64 * 3] * 3  # the output's examples: whole 64 px images, in one strip
    ratios = page.eval_on_selector_all(".example", "es => es.map(e => e.style.aspectRatio)")
    assert ratios == ["64 / 64"] * 3
    assert "Reached / dataset max" in page.inner_text(".facts")
    assert "% of the picture's pixels" in page.inner_text(".share")
    assert page.locator("svg.curve text").count() >= 4  # axes labelled


@pytest.fixture(scope="module")
def server(site):
    """Serve the folder above the site, so the atlas lives under a sub-path."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site.parent))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{site.name}/"
    httpd.shutdown()


def test_layer_page_over_http_sorts_by_ratio_and_shows_top_examples(site, server, page):
    page.goto(server + "index.html")
    page.click('a.layer-link:has-text("enc1")')
    assert page.url == server + "layers/enc1.html"
    page.select_option("#sort", "ratio")
    settled(page)
    ratios = page.eval_on_selector_all(".unit", "us => us.map(u => parseFloat(u.dataset.ratio))")
    manifest = json.loads((site / "manifest.json").read_text())
    expected = [u["reached_over_max"] for u in manifest["layers"][0]["units"]]
    assert len(set(expected)) == len(expected) and None not in expected
    assert ratios == sorted(expected, reverse=True) and ratios != expected
    assert page.locator(".top-example:visible").count() == 0
    page.check("#examples-toggle")
    loaded = "document.querySelectorAll('.top-example:not([hidden])').length"
    assert page.evaluate(loaded) == 16
    assert all(width > 0 for width in loaded_images(page, ".top-example"))


def search(page, query: str) -> list[str]:
    """Type a query in the page's search box; return the results' texts once shown."""
    page.fill("#search", query)
    page.wait_for_selector("#search-results:not([hidden]) li")
    return page.eval_on_selector_all("#search-results li", "ls => ls.map(l => l.innerText)")


@pytest.mark.parametrize("where", ["file", "http"])
def test_search_finds_units_by_label_concept_layer_and_channel(site, server, page, where):
    base = site.as_uri() + "/" if where == "file" else server
    page.goto(base + "layers/enc1.html")
    index_scripts = "document.querySelectorAll('script[src*=\"search/\"]').length"
    assert page.evaluate(index_scripts) == 0  # no index before the first keystroke
    found = search(page, "vertical stripes")
    assert found[0].startswith("output 5 · vertical stripes")  # the class label first
    detectors = [text for text in found[1:] if "detects vertical stripes" in text]
    assert detectors and all(text.startswith("enc1 ") for text in detectors)  # then detectors
    loaded = page.evaluate("[...document.scripts].map(s => s.src.split('/search/')[1] || '')")
    assert "index.js" in loaded and "t-v.js" in loaded and "t-c.js" not in loaded
    assert search(page, "enc1 13")[0].startswith("enc1 13")
    assert search(page, "nothing matches this")[0] == "no unit matches"
    search(page, "circle")
    page.click("#search-results a")
    assert page.url == base + "units/output/1.html"
    assert page.eval_on_selector("img.picture", "i => i.naturalWidth") == 32


def test_a_label_with_markup_is_text_in_search_results(site, page):
    page.goto((site / "index.html").as_uri())
    found = search(page, "checkerboard")
    assert found[0].startswith("output 6 · " + LABELS[6])
    assert page.evaluate("window.pwned") is None


def test_concept_bar_chart_filter_and_dimmed_examples_render(site, page):
    page.goto((site / "layers" / "output.html").as_uri())
    assert "6 of 7 units are detectors of 6 concepts" in page.inner_text(".concepts")
    assert page.locator("svg.bars rect").count() == 6
    page.select_option("#concept", "triangle")
    settled(page)
    assert page.inner_text("#count") == "1 of 7 channels"
    page.select_option("#concept", "-")
    settled(page)
    assert page.inner_text("#count") == "1 of 7 channels"  # background: no concept
    page.goto((site / "units" / "output" / "3.html").as_uri())
    page.wait_for_load_state("load")
    assert "triangle (detector) · IoU" in page.inner_text(".concept-scores")
    grid = page.locator(".examples-grid.masked")
    assert grid.count() == 1
    background = grid.locator(".example").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert background == "rgb(0, 0, 0)"  # the alpha mask shows dimmed over black
    widths = loaded_images(page, ".masked .example")
    assert widths and all(w == 64 * 3 for w in widths)


@pytest.fixture(scope="module")
def segfolder_site(tmp_path_factory):
    """A segfolder data set of shapes images whose last class name holds markup."""
    from atlas_shapes.data import CLASSES, make_sample

    root = tmp_path_factory.mktemp("segfolder")
    for name in ("images", "labels"):
        (root / "data" / name).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(24):
        image, labels = make_sample(rng)
        cv2.imwrite(str(root / "data" / "images" / f"{i}.png"), image[..., ::-1])
        cv2.imwrite(str(root / "data" / "labels" / f"{i}.png"), labels.astype(np.uint8))
    names = [*CLASSES[:-1], "<script>window.pwned = 3</script>checks"]
    (root / "data" / "classes.txt").write_text("\n".join(names) + "\n")
    tables = {
        "layers": ["output"],
        "render": {"size": 16, "steps": 2},
        "dataset": {"source": "segfolder:data", "samples": 24, "top_k": 2},
    }
    (root / "seg.toml").write_text(recipe_toml(**tables))
    result = atlas_build(root / "seg.toml", root)
    assert result.returncode == 0, result.stderr
    return root / "site"


def test_a_concept_with_markup_is_text(segfolder_site, page):
    page.goto((segfolder_site / "layers" / "output.html").as_uri())
    found = search(page, "checks")
    assert found[0].startswith("output 6 · checkerboard")
    assert found[0].endswith("detects <script>window.pwned = 3</script>checks")
    page.goto((segfolder_site / "units" / "output" / "6.html").as_uri())
    assert "<script>window.pwned = 3</script>checks (detector)" in page.inner_text(".facts")
    assert page.evaluate("window.pwned") is None


@pytest.fixture(scope="module")
def big_site(tmp_path_factory):
    """A hand-made atlas with one layer of 4,096 units (8 px pictures, two examples each)."""
    from test_site import manifest, sources

    from atlas.site import update_site

    data = manifest(layers=("wide",), units=4096, size=8)
    for unit in data["layers"][0]["units"]:
        unit["label"] = f"class {unit['channel']}"
        if unit["channel"] % 512 == 7:
            unit["concept"] = "zigzag"
    site = tmp_path_factory.mktemp("big") / "site"
    update_site(data, sources(data), site)
    return site


def test_a_4096_unit_layer_pages_in_and_filters_across_every_unit(big_site, page):
    received = []
    page.on("response", lambda r: received.append(len(r.body())))
    page.goto((big_site / "layers" / "wide.html").as_uri())
    page.wait_for_load_state("load")
    assert sum(received) < 1_000_000  # the first screen
    assert page.locator(".unit").count() == 120
    assert page.inner_text("#count") == "4096 of 4096 channels"
    for _ in range(80):  # scroll to the end, as a reader would
        page.mouse.wheel(0, 20_000)
        page.wait_for_timeout(50)
        if page.locator(".unit").count() == 4096:
            break
    assert page.locator(".unit").count() == 4096
    assert page.eval_on_selector(".unit:last-child", "u => u.dataset.channel") == "4095"
    page.fill("#filter", "4095")
    settled(page)
    assert page.eval_on_selector_all(".unit", "us => us.map(u => u.dataset.channel)") == ["4095"]
    page.fill("#filter", "zigzag")
    settled(page)
    assert page.inner_text("#count") == "8 of 4096 channels"
    page.fill("#filter", "")
    page.select_option("#sort", "objective")
    settled(page)
    assert page.locator(".unit").count() == 120 and "4096 of 4096" in page.inner_text("#count")


@pytest.mark.parametrize("where", ["file", "http"])
def test_built_from_links_open_the_input_units(site, server, page, where):
    base = site.as_uri() + "/" if where == "file" else server
    manifest = json.loads((site / "manifest.json").read_text())
    output = next(x for x in manifest["layers"] if x["name"] == "output")
    inputs = output["units"][1]["inputs"]
    assert inputs and all(i["layer"] == "enc1" for i in inputs)
    page.goto(base + "units/output/1.html")
    assert page.locator(".connections h3").first.inner_text() == "Built from"
    assert page.locator("svg.wires line").count() >= len(inputs[:12])
    page.click(".connections .links a >> nth=0")
    assert page.url == base + inputs[0]["page"]
    assert "enc1" in page.inner_text("h1") and f"channel {inputs[0]['channel']}" in page.inner_text(
        "h1"
    )
    feeds = page.locator(".connections h3", has_text="Feeds into")
    assert feeds.count() == 1  # enc1's units feed the output
    page.goto(base + "layers/output.html")
    page.check("#inputs-toggle")
    assert page.locator(".top-input:not([hidden])").count() == 7


@pytest.fixture(scope="module")
def map_server(mapped):
    """Serve the mapped build's parent folder: its site under a sub-path."""
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(mapped.site.parent)
    )
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{mapped.site.name}/"
    httpd.shutdown()


@pytest.mark.parametrize("where", ["file", "http"])
def test_the_map_zooms_pans_and_opens_a_cell(mapped, map_server, page, where):
    base = mapped.site.as_uri() + "/" if where == "file" else map_server
    page.goto(base + "index.html")
    page.click("a.map-link >> nth=0")
    assert page.url == base + "maps/mid.html"
    view = page.locator("#map")
    cells = page.locator("#map .cell")
    assert cells.count() >= 3
    assert all(width > 0 for width in loaded_images(page, "#map .icon"))
    box = view.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    page.wait_for_function("Number(document.getElementById('map').dataset.scale) > 1.5")
    before = int(view.get_attribute("data-x"))
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 120, box["y"] + box["height"] / 2 + 40, steps=5)
    page.mouse.up()
    assert int(view.get_attribute("data-x")) != before  # dragged, and no cell opened
    assert page.url == base + "maps/mid.html"
    page.click("[data-zoom=reset]")
    first = cells.first
    first.hover()
    info = page.locator("#cell-info")
    assert "activations" in info.inner_text() and info.locator(".patch").count() == 3
    index = first.get_attribute("data-index")
    first.click()
    assert page.url == base + f"maps/mid/{index}.html"
    assert page.locator("img.picture").evaluate("i => i.complete && i.naturalWidth") > 0
    assert page.locator(".examples-grid .example").count() == 3
    page.click(".cell-units a >> nth=0")
    assert "/units/mid/" in page.url
