"""Image parameterizations: a batch of learnable images mapped to [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..constants import constant

# Square root of ImageNet's colour correlation (lucid), normalised by its largest column norm.
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], "float32")
COLOR_CORRELATION = _COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0))

Shape = tuple[int, int, int, int]  # batch, channels, height, width
EDGE = 1 / 512  # a seed image is clamped to [EDGE, 1 - EDGE] so the sigmoid can reach it


def _randn(shape: Sequence[int], generators: Sequence[torch.Generator], sd: float) -> torch.Tensor:
    """Draw one independent normal sample per batch element from its own generator."""
    rows = [torch.randn(tuple(shape[1:]), generator=g) * sd for g in generators]
    return torch.stack(rows)


def decorrelate_colors(image: torch.Tensor) -> torch.Tensor:
    """Map decorrelated colour coordinates to RGB (NCHW, 3 channels)."""
    matrix = constant(COLOR_CORRELATION, image.device, image.dtype)
    return torch.einsum("bchw,dc->bdhw", image, matrix)


def fft_scale(h: int, w: int, decay: float) -> torch.Tensor:
    """Return the 1/f^decay spectrum scale for an rfft2 of an (h, w) image."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    freqs = torch.sqrt(fx * fx + fy * fy)
    return 1.0 / torch.clamp(freqs, min=1.0 / max(h, w)) ** decay


def standardize(x: torch.Tensor) -> torch.Tensor:
    """Return each image of a batch with zero mean and unit standard deviation."""
    flat = x.flatten(1)
    mean = flat.mean(1).view(-1, *[1] * (x.dim() - 1))
    std = flat.std(1).view(-1, *[1] * (x.dim() - 1))
    return (x - mean) / (std + 1e-4)


class ImageParam(nn.Module):
    """A batch of images in [0, 1] computed from learnable tensors.

    With ``alpha`` the images have one more channel, last: their opacity. The render
    settings each parameterization works best with are declared where it is registered.
    """

    def __init__(self, channels: int, decorrelate: bool, alpha: bool = False):
        super().__init__()
        self.decorrelate = decorrelate and channels == 3
        self.alpha = alpha

    def raw(self) -> torch.Tensor:
        """Return the unbounded image before colour mapping, NCHW."""
        raise NotImplementedError

    def start_from(self, images: torch.Tensor) -> None:
        """Set the parameters so the images are the given NCHW ones (in [EDGE, 1 - EDGE])."""
        raw = torch.logit(images.clamp(EDGE, 1 - EDGE))
        if self.decorrelate:
            inverse = torch.linalg.inv(constant(COLOR_CORRELATION, raw.device, raw.dtype))
            raw = torch.einsum("bchw,dc->bdhw", raw, inverse)
        if self.alpha:
            raw = torch.cat([raw, torch.zeros_like(raw[:, :1])], 1)
        with torch.no_grad():
            self.set_raw(raw)

    def set_raw(self, raw: torch.Tensor) -> None:
        """Set the parameters so raw() returns raw; parameterizations that cannot start from
        an image do not override it."""
        raise NotImplementedError(f"{type(self).__name__} cannot start from an image")

    def forward(self) -> torch.Tensor:
        image = self.raw()
        if self.decorrelate:
            colour = decorrelate_colors(image[:, :3])
            image = torch.cat([colour, image[:, 3:]], 1) if self.alpha else colour
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
        alpha: bool = False,
    ):
        super().__init__(shape[1], decorrelate, alpha)
        b, c, h, w = shape
        self.size = (h, w)
        self.register_buffer("scale", fft_scale(h, w, decay))
        self.spectrum = nn.Parameter(_randn((b, c + alpha, h, w // 2 + 1, 2), generators, sd))

    def raw(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        image = torch.fft.irfft2(spectrum, s=self.size, norm="ortho")
        return image / 4.0

    def set_raw(self, raw: torch.Tensor) -> None:
        spectrum = torch.fft.rfft2(raw * 4.0, norm="ortho") / self.scale
        self.spectrum.copy_(torch.view_as_real(spectrum))


class PixelImage(ImageParam):
    """Images whose pixels are learnt directly."""

    def __init__(
        self,
        shape: Shape,
        generators: Sequence[torch.Generator],
        decorrelate: bool = True,
        sd: float = 0.01,
        alpha: bool = False,
    ):
        super().__init__(shape[1], decorrelate, alpha)
        b, c, h, w = shape
        self.pixels = nn.Parameter(_randn((b, c + alpha, h, w), generators, sd))

    def raw(self) -> torch.Tensor:
        return self.pixels

    def set_raw(self, raw: torch.Tensor) -> None:
        self.pixels.copy_(raw)


MACO_CONTRAST = 2.0
MACO_CONTRAST_HELP = (
    "the standardised image's gain before the sigmoid (1.0 left MACO's pictures grey: "
    "sigmoid(±1) spans only 0.27-0.73)"
)


class MacoImage(ImageParam):
    """MACO (Fel et al. 2023): the Fourier magnitude is fixed, only the phase is learnt.

    ``spectrum`` is a (C, H, W//2+1) magnitude (an array or a ``.npy`` file, e.g. written by
    ``atlas spectrum``), resized to the canvas; by default the 1/f magnitude that natural
    images follow on average. Each step the phase and the image are standardised, and
    the image multiplied by ``contrast`` before the sigmoid.
    """

    def __init__(
        self,
        shape: Shape,
        generators: Sequence[torch.Generator],
        decorrelate: bool = True,
        spectrum: str | np.ndarray | None = None,
        contrast: float = MACO_CONTRAST,
    ):
        super().__init__(shape[1], decorrelate)
        b, c, h, w = shape
        self.size, self.contrast = (h, w), contrast
        self.register_buffer("magnitude", load_magnitude(spectrum, c, h, w))
        self.phase = nn.Parameter(_randn((b, c, h, w // 2 + 1), generators, 1.0))

    def raw(self) -> torch.Tensor:
        phase = standardize(self.phase)
        spectrum = torch.polar(self.magnitude.expand_as(phase), phase)
        return self.contrast * standardize(torch.fft.irfft2(spectrum, s=self.size))


def check_spectrum(spectrum: str, input_spec) -> None:
    """Raise ValueError unless a spectrum file fits the model's images: (C, H, W//2+1)."""
    array = np.load(spectrum, allow_pickle=False, mmap_mode="r")
    c = input_spec.channels
    if array.ndim != 3 or array.shape[0] != c:
        raise ValueError(
            f"{spectrum} holds an array of shape {tuple(array.shape)}; a spectrum for "
            f"{c}-channel images is (C={c}, H, W//2+1), as `atlas spectrum` writes it"
        )


def load_magnitude(spectrum: str | np.ndarray | None, c: int, h: int, w: int) -> torch.Tensor:
    """Return a (C, h, w//2+1) Fourier magnitude: the given one resized, or 1/f."""
    if spectrum is None:
        return fft_scale(h, w, 1.0).expand(c, -1, -1).clone()
    array = np.load(spectrum, allow_pickle=False) if isinstance(spectrum, str) else spectrum
    magnitude = torch.as_tensor(np.asarray(array, dtype=np.float32))
    if magnitude.dim() != 3 or magnitude.shape[0] != c:
        raise ValueError(
            f"a spectrum for {c}-channel images is (C, H, W//2+1), not {tuple(magnitude.shape)}"
        )
    size = (h, w // 2 + 1)
    return F.interpolate(magnitude[None], size=size, mode="bilinear", align_corners=False)[0]


class CPPNImage(ImageParam):
    """A compositional pattern-producing network per image (lucid's CPPN): a stack of 1x1
    layers over (x, y) with atan-based activations; resolution-independent patterns."""

    def __init__(
        self,
        shape: Shape,
        generators: Sequence[torch.Generator],
        decorrelate: bool = True,
        layers: int = 8,
        width: int = 24,
        alpha: bool = False,
    ):
        super().__init__(shape[1], False, alpha)
        b, c, h, w = shape
        self.size = (h, w)
        r = 3.0**0.5
        ys, xs = torch.meshgrid(torch.linspace(-r, r, h), torch.linspace(-r, r, w), indexing="ij")
        self.register_buffer("grid", torch.stack([xs, ys], -1).view(1, h * w, 2))
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        fan_in = 2
        for _ in range(layers):
            self.weights.append(nn.Parameter(_randn((b, fan_in, width), generators, fan_in**-0.5)))
            self.biases.append(nn.Parameter(torch.zeros(b, 1, width)))
            fan_in = 2 * width
        self.out = nn.Parameter(torch.zeros(b, fan_in, c + alpha))

    def raw(self) -> torch.Tensor:
        x = self.grid.expand(self.out.shape[0], -1, -1)
        for weight, bias in zip(self.weights, self.biases, strict=True):
            a = torch.atan(x @ weight + bias)
            x = torch.cat([a / 0.67, a * a / 0.6], -1)
        image = x @ self.out
        return image.transpose(1, 2).reshape(image.shape[0], -1, *self.size)
