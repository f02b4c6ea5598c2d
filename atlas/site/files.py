"""The pictures a site is made of: sources known by a digest before they are read, and the
shared files made from them (thumbnail sheets and example strips, in WebP)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# Lossless: lossy WebP (4:2:0 colour) blurs the saturated colours of these small pictures
# (a median PSNR of 28 dB at quality 90 on the demo's pictures, 10 dB on some examples),
# while lossless WebP is still smaller than PNG (0.9x pictures, 0.7x examples there).
WEBP_LOSSLESS = 101  # OpenCV's quality above 100


@dataclass(frozen=True)
class Source:
    """Bytes of a picture the site shows, known by what decides them (a cache key, say)
    before they are read, so an unchanged site reads nothing."""

    digest: str
    read: Callable[[], bytes]


def as_source(value: Source | Path | str | bytes) -> Source:
    """Return a Source for a Source, PNG bytes, or a file (known by path, size and mtime)."""
    if isinstance(value, Source):
        return value
    if isinstance(value, bytes):
        return Source(hashlib.sha256(value).hexdigest(), lambda: value)
    path = Path(value)
    stat = path.stat()
    return Source(f"{path}:{stat.st_size}:{stat.st_mtime_ns}", path.read_bytes)


def decode(data: bytes) -> np.ndarray:
    """Decode image bytes to BGR or BGRA pixels."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ValueError("not an image OpenCV can read")
    if pixels.ndim == 2:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    return pixels


def encode_webp(pixels: np.ndarray, quality: int = WEBP_LOSSLESS) -> bytes:
    """Encode BGR or BGRA pixels as WebP (lossless unless a quality <= 100 is given)."""
    ok, data = cv2.imencode(".webp", pixels, [cv2.IMWRITE_WEBP_QUALITY, quality])
    if not ok:
        raise ValueError("OpenCV could not encode WebP")
    return data.tobytes()


def compose(size: Sequence[int], cells: Sequence[tuple[Sequence[int], bytes | None]]) -> bytes:
    """Return a WebP of size [w, h] with each picture resized into its box [x, y, w, h]
    (transparent where there is none; with alpha if any picture has it)."""
    width, height = size
    canvas = np.zeros((height, width, 4), np.uint8)
    alpha = False
    for (x, y, w, h), data in cells:
        if data is None:
            continue
        pixels = decode(data)
        alpha = alpha or pixels.shape[2] == 4
        if pixels.shape[:2] != (h, w):
            pixels = cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA)
        if pixels.shape[2] == 3:
            pixels = np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)])
        canvas[y : y + h, x : x + w] = pixels
    return encode_webp(canvas if alpha or (canvas[..., 3] < 255).any() else canvas[..., :3])


def sprites(records: Iterable[tuple[str, dict]]) -> dict[str, tuple[list, list]]:
    """Group (source key, sprite record) pairs by the file they share: file -> (its size,
    its cells as (box, source key))."""
    out: dict[str, tuple[list, list]] = {}
    for key, record in records:
        out.setdefault(record["image"], (record["size"], []))[1].append((record["box"], key))
    return out
