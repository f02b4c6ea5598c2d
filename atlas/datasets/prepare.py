"""Images and label maps made into the model's input: the shorter side resized to the input
and the middle cropped; a label map takes exactly the same steps (nearest neighbour), so a
label stays on its pixel."""

from __future__ import annotations

import cv2
import numpy as np

from ..images import as_float
from ..models.adapter import ModelAdapter


def _geometry(shape: tuple[int, int], size: tuple[int, int]) -> tuple[tuple[int, int], int, int]:
    """Return the resized (width, height) of an image of shape (h, w) and the crop's top and
    left corner that fill an input of size (h, w)."""
    h, w = size
    scale = max(h / shape[0], w / shape[1])
    resized = (max(w, round(shape[1] * scale)), max(h, round(shape[0] * scale)))
    return resized, (resized[1] - h) // 2, (resized[0] - w) // 2


def prepare(image: np.ndarray, adapter: ModelAdapter) -> np.ndarray:
    """Resize (shorter side) and centre-crop an image to the model's input: (C, H, W)."""
    pixels = as_float(image)
    h, w = adapter.input.size
    resized, top, left = _geometry(pixels.shape[:2], (h, w))
    pixels = cv2.resize(pixels, resized, interpolation=cv2.INTER_AREA)
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    pixels = pixels[top : top + h, left : left + w]
    channels = adapter.input.channels
    if pixels.shape[-1] != channels:
        pixels = pixels.mean(-1, keepdims=True) if channels == 1 else pixels[..., :1]
        pixels = np.repeat(pixels, channels, -1) if pixels.shape[-1] != channels else pixels
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def prepare_labels(labels: np.ndarray, adapter: ModelAdapter) -> np.ndarray:
    """Resize (nearest neighbour) and crop a label map as prepare() does its image: (H, W)."""
    h, w = adapter.input.size
    resized, top, left = _geometry(labels.shape[:2], (h, w))
    small = np.asarray(labels).astype(np.int32)  # OpenCV resizes no int64
    small = cv2.resize(small, resized, interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(small[top : top + h, left : left + w]).astype(np.int64)
