"""Turn float pictures into PNG bytes and thumbnails with OpenCV."""

from __future__ import annotations

import cv2
import numpy as np


def to_display(image: np.ndarray) -> np.ndarray:
    """Return an (H, W, 1 or 3) uint8 view of an (H, W, C) float image in [0, 1]."""
    channels = image.shape[-1]
    shown = image if channels in (1, 3) else image[..., :3] if channels > 3 else image[..., :1]
    return (np.clip(shown, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """Encode an (H, W, C) float image in [0, 1] as PNG (RGB, or grey for one channel)."""
    pixels = to_display(image)
    if pixels.shape[-1] == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
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
