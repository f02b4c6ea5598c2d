"""The site writer: incremental writes, shared picture files (sheets and strips), and what
survives a rebuild. A hand-made manifest, as gather makes them, with pictures as bytes."""

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from atlas.site import Source, paths, update_site
from atlas.site.record import NAME


def png(colour, size=(20, 20)) -> bytes:
    pixels = np.zeros((*size, 3), np.uint8)
    pixels[:] = colour
    pixels[::4] = 255 - np.asarray(colour)  # a pattern, so a wrong crop shows
    return cv2.imencode(".png", pixels)[1].tobytes()


def unit(slug, c, total, version=0, examples=2, size=20):
    key = f"{slug}-{c}-v{version}"
    image = paths.full_image(slug, str(c))
    return {
        "channel": c,
        "label": None,
        "key": key,
        "page": paths.unit_page(slug, c),
        "image": image,
        "size": [size, size],
        "thumb": paths.thumb(slug, c, total, (size, size), image),
        "objective_final": 1.0 + version,
        "curve": [0.0, 1.0 + version],
        "error": None,
        "negative": None,
        "diversity": [],
        "predicted_share": None,
        "judged_share": None,
        "examples": [
            {
                "key": f"ex-{slug}-{c}-{r}",
                **paths.example(slug, c, r, examples, (12, 10)),
                "value": 1.0,
                "index": r,
            }
            for r in range(examples)
        ],
        "dataset": {"max": 1.0, "mean": 0.5, "p99": 0.9, "samples": 10},
        "reached_over_max": 1.0,
        "reached_over_max_basis": "max",
        "concepts": [],
        "concept": None,
        "inputs": [],
        "outputs": [],
    }


def manifest(layers=("a", "b"), units=3, changed=None, size=20) -> dict:
    out = []
    for name in layers:
        records = [unit(name, c, units, int((name, c) == changed), size=size) for c in range(units)]
        out.append(
            {
                "name": name,
                "type": "Conv2d",
                "shape": [units, 4, 4],
                "channels": units,
                "supported": True,
                "channel_meaning": "feature map channel (mean over space)",
                "slug": name,
                "page": paths.layer_page(name),
                "summary": None,
                "units": records,
            }
        )
    return {
        "format": 2,
        "title": "hand made",
        "description": "",
        "generated": "now",
        "model": {
            "source": "test/hand",
            "weights": None,
            "digest": "0",
            "random_weights": False,
            "description": "",
            "input": {"channels": 3, "size": [20, 20]},
        },
        "judge": None,
        "objective": "channel",
        "seed": 0,
        "render": {"param": "fft", "steps": 2, "lr": 0.05, "size": [20, 20]},
        "negative": False,
        "diversity": 0,
        "units_total": len(layers) * units,
        "layers": out,
        "pictures": [],
        "dataset": {"source": "hand", "samples": 10, "top_k": 2, "asked": 10, "skipped": []},
        "concepts": None,
    }


def crop(key: str) -> bytes:
    """An example crop whose colour comes from its key."""
    colour = [hash(key) % 200, (hash(key) // 200) % 200, 40]
    return png(colour, (12, 10))


def sources(data: dict) -> dict[str, Source]:
    found = {}
    for layer in data["layers"]:
        for u in layer["units"]:
            colour = [(u["channel"] * 70) % 255, 100, 50 * u["objective_final"]]
            found[u["key"]] = Source(u["key"], lambda c=colour, s=u["size"]: png(c, s))
            for e in u["examples"]:
                found[e["key"]] = Source(e["key"], lambda k=e["key"]: crop(k))
    return found


def stamps(site: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(site)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in site.rglob("*")
        if p.is_file()
    }


def write(data, site, **kwargs):
    return update_site(data, sources(data), site, **kwargs)


def test_a_rebuild_with_nothing_changed_writes_no_file(tmp_path):
    site = tmp_path / "site"
    first = write(manifest(), site)
    assert "index.html" in first.written and "manifest.json" in first.written
    before = stamps(site)
    again = write(manifest(), site)
    assert again.written == [] and again.deleted == []
    assert stamps(site) == before
    assert (site / "a" / "x").exists() is False  # nothing stray


def test_a_changed_unit_rewrites_its_files_and_the_pages_that_show_it(tmp_path):
    site = tmp_path / "site"
    write(manifest(), site)
    record = json.loads((site / NAME).read_text())
    (site / NAME).write_text(json.dumps({**record, "changed": "2000-01-01T00:00:00+00:00"}))
    changed = write(manifest(changed=("b", 1)), site)
    assert sorted(changed.written) == sorted(
        [
            "images/b/1.png",  # its picture (and thumbnail: it is small)
            "units/b/1.html",  # its page
            "layers/b.html",  # the page that shows it in its grid
            "layers/b/units-0.js",  # the layer's unit records
            "index.html",  # shows the first thumbnails of every layer
            "manifest.json",
        ]
    )
    assert changed.deleted == []
    assert json.loads((site / "manifest.json").read_text())["generated"] > "2026"  # now


def test_a_removed_layer_is_deleted_and_hand_placed_files_stay(tmp_path):
    site = tmp_path / "site"
    write(manifest(), site)
    (site / "CNAME").write_text("atlas.example.org\n")
    (site / ".nojekyll").write_text("")
    done = write(manifest(layers=("a",)), site)
    assert "units/b/0.html" in done.deleted and "examples/b/0.webp" in done.deleted
    assert not (site / "units" / "b").exists() and not (site / "examples" / "b").exists()
    assert (site / "CNAME").read_text() == "atlas.example.org\n" and (site / ".nojekyll").exists()
    assert (site / "units" / "a" / "0.html").exists()


def test_changed_templates_rewrite_the_pages_only(tmp_path):
    site = tmp_path / "site"
    write(manifest(), site)
    mine = tmp_path / "templates"
    mine.mkdir()
    (mine / "layer.html").write_text("MY LAYER {{ layer.name }}")
    done = write(manifest(), site, template_dirs=[mine])
    assert (site / "layers" / "a.html").read_text() == "MY LAYER a"
    pages = {p for p in done.written if p.endswith(".html")}
    assert pages == {str(p.relative_to(site)) for p in site.rglob("*.html")}
    assert not [p for p in done.written if p.endswith((".webp", ".png", ".js"))]


def test_a_changed_large_picture_rewrites_its_thumbnail_sheet(tmp_path):
    site = tmp_path / "site"
    write(manifest(size=150), site)
    changed = write(manifest(changed=("a", 2), size=150), site)
    assert {"images/a/2.png", "thumbs/a/0.webp"} <= set(changed.written)
    assert "thumbs/b/0.webp" not in changed.written


def test_an_interrupted_build_is_repaired_by_the_next(tmp_path):
    site = tmp_path / "site"
    write(manifest(), site)
    (site / "units" / "a" / "2.html").unlink()  # lost, as by a crash between writes
    done = write(manifest(), site)
    assert done.written == ["units/a/2.html"]


def test_sheets_and_strips_hold_every_picture_in_its_box(tmp_path):
    site = tmp_path / "site"
    data = manifest(units=70, size=150)  # thumbnails 128 px: two sheets, 64 and 6
    found = sources(data)
    update_site(data, found, site)
    for layer in data["layers"]:
        for u in layer["units"]:
            assert u["thumb"]["image"].endswith(".webp")
            sheet = cv2.imread(str(site / u["thumb"]["image"]), cv2.IMREAD_UNCHANGED)
            assert list(sheet.shape[1::-1]) == u["thumb"]["size"]
            x, y, w, h = u["thumb"]["box"]
            original = cv2.imdecode(np.frombuffer(found[u["key"]].read(), np.uint8), 1)
            small = cv2.resize(original, (w, h), interpolation=cv2.INTER_AREA)
            assert (sheet[y : y + h, x : x + w, :3] == small).all()  # lossless
            for e in u["examples"]:
                strip = cv2.imread(str(site / e["image"]), cv2.IMREAD_UNCHANGED)
                x, y, w, h = e["box"]
                expected = cv2.imdecode(np.frombuffer(crop(e["key"]), np.uint8), 1)
                assert (strip[y : y + h, x : x + w, :3] == expected).all()
    files = [p for p in site.rglob("*") if p.is_file() and p.name != NAME]
    assert len(files) / data["units_total"] < 3.2  # page, picture and strip per unit, then shared


def test_site_files_are_readable_by_others(tmp_path):
    site = tmp_path / "site"
    write(manifest(), site)
    mode = (site / "index.html").stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.e2e
def test_strips_of_a_build_show_each_example_crop(every_table):
    site = every_table.site
    data = json.loads((site / "manifest.json").read_text())
    layer = next(x for x in data["layers"] if x["name"] == "enc1")
    metas = (every_table.cache / "examples").glob("??/*/meta.json")
    folder = next(m.parent for m in metas if json.loads(m.read_text())["layer"] == "enc1")
    checked = 0
    for u in layer["units"]:
        for rank, e in enumerate(u["examples"]):
            strip = cv2.imread(str(site / e["image"]), cv2.IMREAD_UNCHANGED)
            x, y, w, h = e["box"]
            original = cv2.imread(str(folder / f"{u['channel']}-{rank}.png"))
            assert (strip[y : y + h, x : x + w, :3] == original).all(), (u["channel"], rank)
            checked += 1
    assert checked == 16 * 3


def test_a_build_interrupted_before_its_record_is_repaired(tmp_path, monkeypatch):
    from atlas.site import writer

    site = tmp_path / "site"
    calls = {"n": 0}
    real = writer.write_file

    def crash_after_some(path, data):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt  # killed half way through the first build
        real(path, data)

    monkeypatch.setattr(writer, "write_file", crash_after_some)
    with pytest.raises(KeyboardInterrupt):
        write(manifest(), site)
    monkeypatch.setattr(writer, "write_file", real)
    done = write(manifest(), site)  # not refused as a folder that holds no atlas
    assert (site / "manifest.json").exists() and "index.html" in done.written
    again = write(manifest(), site)
    assert again.written == []


def test_a_removed_layer_rewrites_no_page_of_the_others(tmp_path):
    site = tmp_path / "site"
    write(manifest(layers=("a", "b", "c")), site)
    done = write(manifest(layers=("a", "b")), site)
    assert not [p for p in done.written if p.startswith(("units/", "layers/", "images/"))]
    assert "index.html" in done.written and "units/c/0.html" in done.deleted
