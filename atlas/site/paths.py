"""Where everything lives in a site, and how pictures share files: every page path, the
thumbnail sheets (a block of a layer's thumbnails in one WebP) and the example strips (a
unit's dataset examples side by side in one WebP). The manifest records a picture's file
and its box in it; the writer makes the files from those records."""

from __future__ import annotations

import math
import re

THUMB = 128  # a thumbnail's longer side at most (smaller pictures keep their size)
SHEET_COLUMNS = 8
SHEET = 64  # thumbnails per sheet: 8 x 8
PICTURES_PAGE = "pictures.html"
PICTURES = "pictures"  # the slug of the composed pictures, kept from layers


def slugify(name: str, taken: set[str]) -> str:
    """Return a file-name-safe slug for a layer name, unique among taken."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "layer"
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    taken.add(slug)
    return slug


def layer_page(slug: str) -> str:
    return f"layers/{slug}.html"


def layer_chunk(slug: str, index: int) -> str:
    """Return the script holding a block of a layer's unit records (for its page)."""
    return f"layers/{slug}/units-{index}.js"


def unit_page(slug: str, channel: int) -> str:
    return f"units/{slug}/{channel}.html"


def picture_page(slug: str) -> str:
    return f"pictures/{slug}.html"


def full_image(slug: str, name: str) -> str:
    """Return where a picture's full-size PNG goes (name: a channel, or channel-variant)."""
    return f"images/{slug}/{name}.png"


def thumb_size(size: tuple[int, int]) -> tuple[int, int]:
    """Return a thumbnail's (h, w) for a picture of size (h, w): the longer side THUMB."""
    h, w = size
    scale = min(1.0, THUMB / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def thumb(slug: str, index: int, total: int, size: tuple[int, int], image: str) -> dict:
    """Return the thumbnail record of the index-th of total pictures of size (h, w) in a
    slug's sheets, ``{image, box: [x, y, w, h], size: [sheet w, sheet h]}``; a picture no
    larger than a thumbnail is its own (image: its full-size file)."""
    th, tw = thumb_size(size)
    if (th, tw) == tuple(size):
        return {"image": image, "box": [0, 0, tw, th], "size": [tw, th]}
    sheet, cell = divmod(index, SHEET)
    count = min(SHEET, total - sheet * SHEET)
    columns = min(SHEET_COLUMNS, count)
    rows = math.ceil(count / SHEET_COLUMNS)
    row, column = divmod(cell, SHEET_COLUMNS)
    return {
        "image": f"thumbs/{slug}/{sheet}.webp",
        "box": [column * tw, row * th, tw, th],
        "size": [columns * tw, rows * th],
    }


def example(slug: str, channel: int, rank: int, total: int, size: tuple[int, int]) -> dict:
    """Return the place of a unit's rank-th of total dataset examples, each (h, w), in its
    strip: ``{image, box, size}``."""
    h, w = size
    return {
        "image": f"examples/{slug}/{channel}.webp",
        "box": [rank * w, 0, w, h],
        "size": [total * w, h],
    }


def map_page(slug: str) -> str:
    """Return a layer's activation atlas page."""
    return f"maps/{slug}.html"


def cell_page(slug: str, index: int) -> str:
    return f"maps/{slug}/{index}.html"


def cell_image(slug: str, index: int) -> str:
    return f"maps/{slug}/{index}.png"


def cell_patch(slug: str, index: int, rank: int, total: int, size: tuple[int, int]) -> dict:
    """Return the place of a cell's rank-th of total real patches in its strip."""
    h, w = size
    return {
        "image": f"maps/{slug}/{index}-patches.webp",
        "box": [rank * w, 0, w, h],
        "size": [total * w, h],
    }
