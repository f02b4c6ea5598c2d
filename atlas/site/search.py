"""The site's search index: plain ``.js`` files a page loads with ``<script>`` on the first
keystroke (Chromium lets a page opened from ``file://`` run scripts but not ``fetch()``).

``search/index.js`` holds the layers (names, pages, unit counts) and the list of shards;
``search/t-X.js`` holds, for the words starting with X, the units whose class label or
detected concept has that word; ``search/u-L-B.js`` the page, thumbnail, label and concept of
block B (``BLOCK`` units) of layer L, loaded only to show a result. A query loads the index,
the shards of its words' first letters and the blocks of the results it shows, so no page
pays for the index before someone types, and none loads all of it.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping

FOLDER = "search"
INDEX = f"{FOLDER}/index.js"
LABEL, CONCEPT = 0, 1  # what a posting's word came from: the unit's class label or concept
BLOCK = 256  # units per block of result records


def words(text: str) -> list[str]:
    """Split text into lowercase words of letters and digits (accents folded)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return [w for w in re.split(r"[^a-z0-9]+", folded) if w]


def shard_of(word: str) -> str:
    """Return the shard a word lives in: its first letter or digit."""
    return word[0] if word and word[0].isalnum() and word[0].isascii() else "_"


def _postings(layers: list[Mapping]) -> dict[str, dict[str, list]]:
    """Return shard -> word -> postings [layer, channel, kind, score] of every unit whose
    class label or detected concept holds the word."""
    shards: dict[str, dict[str, list]] = {}
    for i, layer in enumerate(layers):
        for unit in layer["units"]:
            texts = [(LABEL, unit.get("label"), 1.0)]
            if unit.get("concept"):
                score = next(
                    (c["score"] for c in unit["concepts"] if c["name"] == unit["concept"]), 0
                )
                texts.append((CONCEPT, unit["concept"], score or 0))
            for kind, text, score in texts:
                for word in dict.fromkeys(words(text or "")):
                    posting = [i, unit["channel"], kind, round(float(score), 4)]
                    shards.setdefault(shard_of(word), {}).setdefault(word, []).append(posting)
    return shards


def _unit_row(unit: Mapping) -> list:
    """Return what a result shows of a unit: channel, page, label, concept, and its
    thumbnail as [file, x, y, w, h, file w, file h] (null without one)."""
    thumb = unit.get("thumb")
    return [
        unit["channel"],
        unit["page"],
        unit.get("label") or "",
        unit.get("concept") or "",
        [thumb["image"], *thumb["box"], *thumb["size"]] if thumb else None,
    ]


def _script(call: str, *args: object) -> str:
    """Return one line of JavaScript calling atlasSearch.<call>(args as JSON)."""
    body = ", ".join(json.dumps(a, separators=(",", ":"), ensure_ascii=True) for a in args)
    return f"window.atlasSearch&&window.atlasSearch.{call}({body});\n"


def search_files(manifest: Mapping) -> dict[str, str]:
    """Return the search index's files (path in the site -> JavaScript). Units are found
    by their place in their layer's list, which is their channel number."""
    layers = list(manifest["layers"])
    shards = _postings(layers)
    files = {
        f"{FOLDER}/t-{key}.js": _script("shard", key, dict(sorted(table.items())))
        for key, table in shards.items()
    }
    for i, layer in enumerate(layers):
        units = layer["units"]
        for b in range(0, len(units), BLOCK):
            rows = [_unit_row(unit) for unit in units[b : b + BLOCK]]
            files[f"{FOLDER}/u-{i}-{b // BLOCK}.js"] = _script("units", i, b // BLOCK, rows)
    index = {
        "layers": [
            {"name": x["name"], "page": x["page"], "units": len(x["units"])} for x in layers
        ],
        "shards": sorted(shards),
        "block": BLOCK,
    }
    files[INDEX] = _script("index", index)
    return files
