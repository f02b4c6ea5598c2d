"""Turn float pictures into PNG bytes and thumbnails with OpenCV."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")  # what OpenCV reads


def as_float(image: np.ndarray) -> np.ndarray:
    """Return an (H, W, C) float32 image in [0, 1] from uint8 or float pixels."""
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0
    return pixels.astype(np.float32)


def to_display(image: np.ndarray, alpha: bool = False) -> np.ndarray:
    """Return an (H, W, 1, 3 or 4) uint8 view of an (H, W, C) float image in [0, 1].

    With alpha the last channel is opacity and the result is RGBA.
    """
    colour = image[..., :-1] if alpha else image
    channels = colour.shape[-1]
    shown = colour if channels in (1, 3) else colour[..., :3] if channels > 3 else colour[..., :1]
    if alpha:
        shown = np.concatenate([np.repeat(shown, 3 // shown.shape[-1], -1), image[..., -1:]], -1)
    return (np.clip(shown, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def encode_png(image: np.ndarray, alpha: bool = False) -> bytes:
    """Encode an (H, W, C) float image in [0, 1] as PNG (RGB, grey for one channel, RGBA
    with alpha)."""
    pixels = to_display(image, alpha)
    if pixels.shape[-1] == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    elif pixels.shape[-1] == 4:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)
    ok, data = cv2.imencode(".png", pixels)
    if not ok:
        raise ValueError("OpenCV could not encode the image as PNG")
    return data.tobytes()


def thumbnail_png(data: bytes, size: int) -> bytes:
    """Return PNG bytes of the image shrunk so its longer side is at most size."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    h, w = pixels.shape[:2]
    if max(h, w) <= size:
        return data
    scale = size / max(h, w)
    small = cv2.resize(pixels, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".png", small)[1].tobytes()


def read_image(path: str | Path) -> np.ndarray:
    """Return an image file as (H, W, 3) float32 RGB in [0, 1]; ValueError if unreadable."""
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ValueError(f"{path} is not an image OpenCV can read ({', '.join(IMAGE_SUFFIXES)})")
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def decode_png(data: bytes) -> np.ndarray:
    """Return a PNG as the site shows it, (H, W, C) float32 in [0, 1]: RGB, grey as one
    channel, a transparent picture laid over mid-grey."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ValueError("not a PNG OpenCV can read")
    image = pixels.astype(np.float32) / (65535.0 if pixels.dtype == np.uint16 else 255.0)
    if image.ndim == 2:
        return image[..., None]
    if image.shape[-1] == 4:
        colour, alpha = image[..., 2::-1], image[..., 3:]
        return colour * alpha + 0.5 * (1 - alpha)
    return image[..., ::-1].copy()
