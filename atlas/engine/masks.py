"""Spatial masks for objectives: named regions, rectangles and greyscale images."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import AtlasError, unknown
from ..images import IMAGE_SUFFIXES

# Named regions as [x0, y0, x1, y1] fractions of the canvas ("border" is not "center").
REGIONS: dict[str, tuple[float, float, float, float]] = {
    "left": (0.0, 0.0, 0.5, 1.0),
    "right": (0.5, 0.0, 1.0, 1.0),
    "top": (0.0, 0.0, 1.0, 0.5),
    "bottom": (0.0, 0.5, 1.0, 1.0),
    "center": (0.25, 0.25, 0.75, 0.75),
    "top-left": (0.0, 0.0, 0.5, 0.5),
    "top-right": (0.5, 0.0, 1.0, 0.5),
    "bottom-left": (0.0, 0.5, 0.5, 1.0),
    "bottom-right": (0.5, 0.5, 1.0, 1.0),
}
NAMES = (*REGIONS, "border")
MAX_SIDE = 128  # image masks are kept at most this large; activations are rarely larger


@dataclass(frozen=True)
class Mask:
    """Where a term of an objective counts: weights in [0, 1] over the canvas."""

    region: str | None = None
    rect: tuple[float, float, float, float] | None = None
    pixels: np.ndarray | None = field(default=None, compare=False, repr=False)
    pixels_sha256: str | None = None

    def at(self, h: int, w: int) -> np.ndarray:
        """Return the (h, w) float32 weights of this mask on an h x w grid (computed once per
        grid: objectives ask for them at every optimisation step)."""
        return _weights(self, h, w)

    def compute(self, h: int, w: int) -> np.ndarray:
        """Compute the (h, w) float32 weights of this mask."""
        if self.pixels is not None:
            return cv2.resize(self.pixels, (w, h), interpolation=cv2.INTER_AREA).clip(0, 1)
        if self.region == "border":
            return 1.0 - _rect_weights(REGIONS["center"], h, w)
        return _rect_weights(REGIONS[self.region] if self.region else self.rect, h, w)

    @property
    def spec(self) -> dict:
        """Return plain data that identifies the mask."""
        if self.pixels is not None:
            return {"image_sha256": self.pixels_sha256, "shape": list(self.pixels.shape)}
        if self.region:
            return {"region": self.region}
        return {"rect": list(self.rect)}


@functools.lru_cache(maxsize=64)
def _weights(mask: Mask, h: int, w: int) -> np.ndarray:
    """Return a mask's weights on a grid, remembered (callers must not modify them)."""
    return mask.compute(h, w)


def _rect_weights(rect, h: int, w: int) -> np.ndarray:
    """Return the share of each grid cell that lies inside rect (fractions of the grid)."""
    x0, y0, x1, y1 = rect

    def cover(lo: float, hi: float, n: int) -> np.ndarray:
        edges = np.arange(n + 1, dtype=np.float64) / n
        return np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0, None) * n

    return np.outer(cover(y0, y1, h), cover(x0, x1, w)).astype(np.float32)


def from_array(array: np.ndarray, where: str = "mask") -> Mask:
    """Return a mask from a (H, W) array (white = 1 = full weight)."""
    pixels = np.asarray(array, dtype=np.float32)
    if pixels.ndim == 3 and pixels.shape[-1] in (1, 3, 4):
        pixels = pixels[..., :3].mean(-1)
    if pixels.ndim != 2 or pixels.size == 0:
        raise AtlasError(f"{where}: a mask array must be 2-D (H, W), not {pixels.shape}")
    if pixels.max() > 1.0:
        pixels = pixels / 255.0
    h, w = pixels.shape
    if max(h, w) > MAX_SIDE:
        scale = MAX_SIDE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    pixels = np.ascontiguousarray(pixels.clip(0, 1).round(4), dtype=np.float32)
    if pixels.max() <= 0:
        raise AtlasError(f"{where}: the mask is black everywhere, so nothing would count")
    return Mask(pixels=pixels, pixels_sha256=hashlib.sha256(pixels.tobytes()).hexdigest())


def from_file(path: Path, where: str = "mask") -> Mask:
    """Return a mask from a greyscale image file."""
    if not path.is_file():
        raise AtlasError(f"{where}: mask image {path} does not exist")
    pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if pixels is None:
        raise AtlasError(f"{where}: mask image {path} cannot be read as an image")
    return from_array(pixels.astype(np.float32) / 255.0, where)


def resolve_mask(value: object, base_dir: Path | None, where: str = "mask") -> Mask | None:
    """Turn what a recipe or a notebook gives as ``mask`` into a Mask (None stays None)."""
    if value is None or isinstance(value, Mask):
        return value
    if isinstance(value, str):
        if value in NAMES:
            return Mask(region=value)
        if Path(value).suffix.lower() in IMAGE_SUFFIXES:
            return from_file((base_dir or Path.cwd()) / value, where)
        hint = "or give [x0, y0, x1, y1] fractions or a greyscale image file"
        raise AtlasError(unknown(f"mask region in {where}", value, NAMES, hint))
    if (
        isinstance(value, (list, tuple))
        and len(value) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        x0, y0, x1, y1 = (float(v) for v in value)
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise AtlasError(
                f"{where}: a mask rectangle is [x0, y0, x1, y1] with 0 <= x0 < x1 <= 1"
            )
        return Mask(rect=(x0, y0, x1, y1))
    if hasattr(value, "shape"):
        return from_array(np.asarray(value), where)
    raise AtlasError(
        f"{where}: a mask is a region name ({', '.join(NAMES)}), [x0, y0, x1, y1] fractions, "
        f"an image file or an array, not {value!r}"
    )
