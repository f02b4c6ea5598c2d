"""A procedurally generated segmentation data set of shapes and textures."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CLASSES = (
    "background",
    "circle",
    "square",
    "triangle",
    "horizontal stripes",
    "vertical stripes",
    "checkerboard",
)
SIZE = 64
STRETCH = {"square": 1.2, "triangle": 1.35}  # a polygon's corner radius over the shape's radius
CORNERS = {"square": 4, "triangle": 3}


@dataclass(frozen=True)
class Style:
    """How a generator draws: shape sizes, colour contrast, noise and blur."""

    radius: tuple[float, float] = (0.1, 0.24)  # a shape's radius, as a share of the size
    contrast: int = 120  # least L1 distance between a region's colour and what is under it
    noise: float = 12.0  # the largest per-image Gaussian noise sigma, in 0..255 units
    blur: float = 0.0  # the chance that an image is blurred (sigma 0.5 to 1.2 px)
    periods: tuple[int, int] = (4, 9)  # a texture's period range, in pixels


DEMO = Style()  # what the demo models were trained on, and shapes/val
JUDGE = Style(radius=(0.08, 0.3), contrast=90, noise=20.0, blur=0.3, periods=(3, 11))


def _colour(
    rng: np.random.Generator, avoid: np.ndarray | None = None, contrast: int = 120
) -> np.ndarray:
    """Draw an RGB colour at least contrast (L1) from avoid."""
    while True:
        colour = rng.integers(0, 256, 3)
        if avoid is None or np.abs(colour - avoid).sum() > contrast:
            return colour


def _polygon(rng: np.random.Generator, centre, radius: float, corners: int) -> np.ndarray:
    """Return the integer vertices of a regular polygon with a random rotation."""
    angle = rng.uniform(0, 2 * np.pi)
    t = angle + np.arange(corners) * 2 * np.pi / corners
    points = np.stack([centre[0] + radius * np.cos(t), centre[1] + radius * np.sin(t)], 1)
    return np.round(points).astype(np.int32)


def _region(rng: np.random.Generator, size: int, shape: str, style: Style = DEMO) -> np.ndarray:
    """Return a boolean mask of one randomly placed, sized and rotated shape."""
    mask = np.zeros((size, size), np.uint8)
    radius = rng.uniform(*style.radius) * size
    centre = rng.uniform(radius * 0.6, size - radius * 0.6, 2)
    if shape == "circle":
        cv2.circle(mask, tuple(int(v) for v in centre), int(radius), 1, -1, cv2.LINE_AA)
    elif shape in CORNERS:
        cv2.fillPoly(mask, [_polygon(rng, centre, radius * STRETCH[shape], CORNERS[shape])], 1)
    else:  # a texture patch: any of the shapes above, or a rectangle
        kind = rng.choice(["circle", "square", "triangle", "rect"])
        if kind == "rect":
            w, h = rng.uniform(0.25, 0.5, 2) * size
            x, y = rng.uniform(0, size - w), rng.uniform(0, size - h)
            mask[int(y) : int(y + h), int(x) : int(x + w)] = 1
        else:
            return _region(rng, size, str(kind), style)
    return mask.astype(bool)


def _texture(rng: np.random.Generator, size: int, kind: str, a, b, style: Style = DEMO):
    """Return an (size, size, 3) image of two-colour stripes or checks."""
    period = int(rng.integers(*style.periods))
    yy, xx = np.mgrid[:size, :size]
    oy, ox = rng.integers(0, period, 2)
    if kind == "horizontal stripes":
        on = ((yy + oy) // (period // 2 or 1)) % 2 == 0
    elif kind == "vertical stripes":
        on = ((xx + ox) // (period // 2 or 1)) % 2 == 0
    else:
        half = period // 2 or 1
        on = (((yy + oy) // half) + ((xx + ox) // half)) % 2 == 0
    return np.where(on[..., None], a, b)


def make_sample(
    rng: np.random.Generator, size: int = SIZE, style: Style = DEMO
) -> tuple[np.ndarray, np.ndarray]:
    """Return one (image uint8 HxWx3, labels int64 HxW) pair."""
    background = _colour(rng)
    image = np.empty((size, size, 3), np.float32)
    image[:] = background
    image += rng.normal(0, rng.uniform(0, style.noise), (size, size, 3))
    labels = np.zeros((size, size), np.int64)
    for _ in range(int(rng.integers(1, 5))):
        cls = int(rng.integers(1, len(CLASSES)))
        name = CLASSES[cls]
        mask = _region(rng, size, name, style)
        colour = _colour(rng, background, style.contrast)
        if cls >= 4:
            fill = _texture(rng, size, name, colour, _colour(rng, colour, style.contrast), style)
            image[mask] = fill[mask]
        else:
            image[mask] = colour
        labels[mask] = cls
    if style.blur and rng.uniform() < style.blur:
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.5, 1.2)))
    return np.clip(image, 0, 255).astype(np.uint8), labels


def make_packed(rng: np.random.Generator, cls: int, radius: int, size: int = SIZE) -> np.ndarray:
    """Return a frame (H, W, 3 float32 in [0, 1]) packed with one class in the demo's style:
    flat shapes of this radius on a hexagonal lattice over a noisy ground, or the texture
    filling the frame. The generator draws nothing like it (no sample of 3,000 is over 38 %
    one shape); it is what a picture that is the class looks like (bench/transfer.py)."""
    name = CLASSES[cls]
    ground = _colour(rng)
    image = ground + rng.normal(0, 6, (size, size, 3))
    if name not in ("circle", *CORNERS):
        first = _colour(rng, ground)
        image = _texture(rng, size, name, first, _colour(rng, first)).astype(float)
        return np.clip(image, 0, 255).astype(np.float32) / 255
    step = int(2.1 * radius)
    for row, y in enumerate(range(radius // 2, size + radius, step)):
        for x in range(radius // 2 + (step // 2) * (row % 2), size + radius, step):
            mask = np.zeros((size, size), np.uint8)
            if name == "circle":
                cv2.circle(mask, (x, y), radius, 1, -1, cv2.LINE_AA)
            else:
                corners = _polygon(rng, (x, y), radius * STRETCH[name], CORNERS[name])
                cv2.fillPoly(mask, [corners], 1)
            image[mask.astype(bool)] = _colour(rng, ground)
    return np.clip(image, 0, 255).astype(np.float32) / 255


def make_batch(
    rng: np.random.Generator, n: int, size: int = SIZE, style: Style = DEMO
) -> tuple[np.ndarray, np.ndarray]:
    """Return n samples stacked: images (n, 3, H, W) float32 in [0, 1], labels (n, H, W)."""
    pairs = [make_sample(rng, size, style) for _ in range(n)]
    images = np.stack([p[0] for p in pairs]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return images, np.stack([p[1] for p in pairs])
