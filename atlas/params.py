"""Image parameterizations: a batch of learnable images mapped to [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

# Square root of ImageNet's colour correlation (lucid), normalised by its largest column norm.
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], "float32")
COLOR_CORRELATION = _COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0))

Shape = tuple[int, int, int, int]  # batch, channels, height, width


def _randn(shape: Sequence[int], generators: Sequence[torch.Generator], sd: float) -> torch.Tensor:
    """Draw one independent normal sample per batch element from its own generator."""
    rows = [torch.randn(tuple(shape[1:]), generator=g) * sd for g in generators]
    return torch.stack(rows)


def decorrelate_colors(image: torch.Tensor) -> torch.Tensor:
    """Map decorrelated colour coordinates to RGB (NCHW, 3 channels)."""
    matrix = torch.as_tensor(COLOR_CORRELATION, device=image.device, dtype=image.dtype)
    return torch.einsum("bchw,dc->bdhw", image, matrix)


def fft_scale(h: int, w: int, decay: float) -> torch.Tensor:
    """Return the 1/f^decay spectrum scale for an rfft2 of an (h, w) image."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    freqs = torch.sqrt(fx * fx + fy * fy)
    return 1.0 / torch.clamp(freqs, min=1.0 / max(h, w)) ** decay


class ImageParam(nn.Module):
    """A batch of images in [0, 1] computed from learnable tensors."""

    def __init__(self, channels: int, decorrelate: bool):
        super().__init__()
        self.decorrelate = decorrelate and channels == 3

    def raw(self) -> torch.Tensor:
        """Return the unbounded image before colour mapping, NCHW."""
        raise NotImplementedError

    def forward(self) -> torch.Tensor:
        image = self.raw()
        if self.decorrelate:
            image = decorrelate_colors(image)
        return torch.sigmoid(image)


class FFTImage(ImageParam):
    """Images whose Fourier spectrum is learnt, scaled by 1/f^decay (lucid's default)."""

    def __init__(
        self,
        shape: Shape,
        generators: Sequence[torch.Generator],
        decorrelate: bool = True,
        decay: float = 1.0,
        sd: float = 0.01,
    ):
        super().__init__(shape[1], decorrelate)
        b, c, h, w = shape
        self.size = (h, w)
        self.register_buffer("scale", fft_scale(h, w, decay))
        self.spectrum = nn.Parameter(_randn((b, c, h, w // 2 + 1, 2), generators, sd))

    def raw(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        image = torch.fft.irfft2(spectrum, s=self.size, norm="ortho")
        return image / 4.0


class PixelImage(ImageParam):
    """Images whose pixels are learnt directly."""

    def __init__(
        self,
        shape: Shape,
        generators: Sequence[torch.Generator],
        decorrelate: bool = True,
        sd: float = 0.01,
    ):
        super().__init__(shape[1], decorrelate)
        self.pixels = nn.Parameter(_randn(shape, generators, sd))

    def raw(self) -> torch.Tensor:
        return self.pixels
