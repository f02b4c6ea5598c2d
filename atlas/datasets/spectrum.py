"""Fourier magnitude spectra for MACO, measured from a folder of images or a data set."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from ..engine.params import COLOR_CORRELATION
from ..errors import AtlasError
from ..images import as_float
from .examples import sample_order
from .folder import load as load_folder


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    """Resize the shorter side to size and centre-crop to size x size."""
    h, w = image.shape[:2]
    scale = size / min(h, w)
    resized = cv2.resize(
        image,
        (max(size, round(w * scale)), max(size, round(h * scale))),
        interpolation=cv2.INTER_AREA,
    )
    top, left = (resized.shape[0] - size) // 2, (resized.shape[1] - size) // 2
    return resized[top : top + size, left : left + size]


def measure_spectrum(images: Iterable[np.ndarray], size: int = 128) -> np.ndarray:
    """Return the mean Fourier magnitude (C, size, size//2+1) of (H, W, C) images in [0, 1].

    RGB images are measured in the decorrelated colour space that MACO's phase lives in.
    """
    total, count = None, 0
    inverse = np.linalg.inv(COLOR_CORRELATION)
    for image in images:
        pixels = _fit(np.asarray(image, dtype=np.float32), size)
        pixels = pixels[..., None] if pixels.ndim == 2 else pixels
        if pixels.shape[-1] == 3:
            pixels = (pixels - pixels.mean((0, 1))) @ inverse.T
        magnitude = np.abs(np.fft.rfft2(pixels.transpose(2, 0, 1)))
        total = magnitude if total is None else total + magnitude
        count += 1
    if not count:
        raise AtlasError("no images to measure a spectrum from")
    return (total / count).astype(np.float32)


def folder_images(folder: Path) -> Iterable[np.ndarray]:
    """Yield every readable image under folder (as ``folder:`` finds them) as RGB floats."""
    dataset = load_folder(str(folder), base_dir=Path.cwd())
    for index in range(len(dataset)):
        image, _ = dataset[index]
        if image is not None:
            yield as_float(image)


def dataset_images(dataset, samples: int, seed: int = 0) -> Iterable[np.ndarray]:
    """Yield up to samples images of an opened data set (the order a build samples in)."""
    for index in sample_order(dataset, samples, seed):
        image = dataset[int(index)][0]
        if image is not None:
            yield as_float(image)


def write_spectrum(
    folder: str | Path | None, out: str | Path, size: int = 128, images=None
) -> Path:
    """Measure the spectrum of the images under folder (or of the given images) and save
    it as a .npy file."""
    if images is None:
        folder = Path(folder)
        if not folder.is_dir():
            raise AtlasError(f"image folder {folder} does not exist")
        images = folder_images(folder)
    spectrum = measure_spectrum(images, size)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, spectrum)
    return out
