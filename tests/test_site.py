"""The site writer: thumbnails, lazy images, relative pages."""

import cv2
import numpy as np
import pytest
from helpers import atlas_build, recipe_toml

from atlas.images import thumbnail_png
from atlas.site.writer import THUMB_SIZE

pytestmark = pytest.mark.e2e  # the real atlas command, workers, a cluster or the browser


def test_thumbnails_shrink_large_pictures_and_keep_small_ones():
    big = cv2.imencode(".png", np.zeros((400, 300, 3), np.uint8))[1].tobytes()
    small = cv2.imencode(".png", np.zeros((40, 30, 3), np.uint8))[1].tobytes()
    shrunk = cv2.imdecode(np.frombuffer(thumbnail_png(big, THUMB_SIZE), np.uint8), 1)
    assert shrunk.shape == (160, 120, 3)
    assert thumbnail_png(small, THUMB_SIZE) == small


def test_grid_images_load_lazily_from_thumbnails(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(recipe_toml(render={"size": 200, "steps": 1}))
    assert atlas_build(recipe, tmp_path).returncode == 0
    page = (tmp_path / "site" / "layers" / "output.html").read_text()
    assert page.count('loading="lazy"') == 7 and page.count('src="../thumbs/output/') == 7
    thumb = cv2.imread(str(tmp_path / "site" / "thumbs" / "output" / "0.png"))
    full = cv2.imread(str(tmp_path / "site" / "images" / "output" / "0.png"))
    assert thumb.shape[:2] == (160, 160) and full.shape[:2] == (200, 200)
