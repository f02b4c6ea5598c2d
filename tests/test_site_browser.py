"""Open the built atlas in headless Chromium from disk and use it as a person would."""

import shutil

import pytest
from helpers import TINY_RECIPE, atlas

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


PICTURES = """
[[pictures]]
name = "<script>window.pwned = 1</script> circle - square"
objective = "channel('output', 'circle') - channel('output', 'square', mask='left')"
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    (root / "tiny.toml").write_text(
        TINY_RECIPE.replace("[render]\n", "[render]\nnegative = true\n") + PICTURES
    )
    result = atlas(
        "build",
        str(root / "tiny.toml"),
        "--out",
        str(root / "site"),
        "--cache-dir",
        str(root / "cache"),
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    return root / "site"


@pytest.fixture(scope="module")
def page():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser.new_page(viewport={"width": 1100, "height": 900})
        browser.close()


def loaded_images(page) -> list[int]:
    script = "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)"
    return page.eval_on_selector_all("img", script)


def test_browse_from_index_to_unit(site, page):
    page.goto((site / "index.html").as_uri())
    assert page.title() == "Tiny shapes"
    page.click('a.layer-link:has-text("output")')
    assert page.url.endswith("/layers/output.html")
    page.wait_for_load_state("load")
    assert all(width > 0 for width in loaded_images(page))
    page.fill("#filter", "circle")
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
    page.select_option("#sort", "objective")
    script = "us => us.map(u => parseFloat(u.dataset.objective))"
    values = page.eval_on_selector_all(".unit", script)
    assert values == sorted(values, reverse=True)


def test_composed_pictures_and_negatives_are_shown(site, page):
    page.goto((site / "index.html").as_uri())
    page.click("text=Composed pictures")
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
    widths = page.eval_on_selector_all("img.picture", "is => is.map(i => i.naturalWidth)")
    assert widths == [32, 32]
    assert "Negative" in page.inner_text(".negative figcaption")
