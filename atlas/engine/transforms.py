"""Random pad, jitter, scale and rotation as one batched affine resampling per step."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..constants import constant
from ..recipe.settings import AugmentSettings, CropSettings, TransformSettings


class TransformSchedule:
    """Every step's random transform for every image, drawn up front from per-image generators."""

    crops = 1  # one transformed view of each image per step

    def __init__(
        self,
        settings: TransformSettings,
        steps: int,
        generators: Sequence[torch.Generator],
        device: torch.device | str = "cpu",
    ):
        self.settings = settings
        draws = [self._draw(settings, steps, g) for g in generators]
        self.jitter1, self.scale, self.angle, self.jitter2 = (
            torch.stack([d[i] for d in draws], dim=1).to(device) for i in range(4)
        )

    @staticmethod
    def _draw(s: TransformSettings, steps: int, g: torch.Generator) -> list[torch.Tensor]:
        """Draw (jitter1, scale, angle, jitter2) for every step from one generator."""
        jitter1 = torch.randint(-s.jitter, s.jitter + 1, (steps, 2), generator=g).float()
        choice = torch.randint(0, len(s.scales), (steps,), generator=g)
        scale = torch.tensor(s.scales, dtype=torch.float32)[choice]
        angle = (torch.rand(steps, generator=g) * 2 - 1) * math.radians(s.degrees)
        jitter2 = torch.randint(-s.jitter2, s.jitter2 + 1, (steps, 2), generator=g).float()
        return [jitter1, scale, angle, jitter2]

    def theta(self, step: int, in_size: tuple[int, int], out_size: tuple[int, int]) -> torch.Tensor:
        """Return the (B, 2, 3) affine map from output to input grid coordinates."""
        (h, w), (ho, wo) = in_size, out_size
        inv_scale = 1.0 / self.scale[step]
        cos, sin = torch.cos(self.angle[step]), torch.sin(self.angle[step])
        rot = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
        linear = rot * inv_scale[:, None, None]
        d_in = constant((w / 2, h / 2), linear.device, linear.dtype)
        d_out = constant((wo / 2, ho / 2), linear.device, linear.dtype)
        a = linear * d_out[None, None, :] / d_in[None, :, None]
        shift = -(linear @ self.jitter2[step][..., None])[..., 0] - self.jitter1[step]
        return torch.cat([a, (shift / d_in)[..., None]], dim=-1)

    def __call__(self, image: torch.Tensor, step: int) -> torch.Tensor:
        """Transform a batch for this step; pixels from outside the image are grey."""
        h, w = image.shape[-2:]
        out_size = (h + 2 * self.settings.pad, w + 2 * self.settings.pad)
        theta = self.theta(step, (h, w), out_size).to(image.dtype)
        shape = [image.shape[0], image.shape[1], *out_size]
        grid = F.affine_grid(theta, shape, align_corners=False)
        moved = F.grid_sample(
            image - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        return moved + 0.5


def device_generators(generators: Sequence[torch.Generator], device) -> list[torch.Generator]:
    """Return one generator on device per image, seeded from that image's own generator."""
    seeds = [int(torch.randint(0, 2**62, (1,), generator=g)) for g in generators]
    return [torch.Generator(device=device).manual_seed(s) for s in seeds]


class CropSchedule:
    """Every step's crops for every image, drawn up front; noise drawn per image per step."""

    def __init__(
        self,
        settings: CropSettings,
        steps: int,
        generators: Sequence[torch.Generator],
        out_size: tuple[int, int],
        device: torch.device | str = "cpu",
    ):
        self.settings, self.out_size, self.crops = settings, tuple(out_size), settings.crops
        lo, hi = settings.box
        boxes, centres = [], []
        for g in generators:
            box = lo + (hi - lo) * torch.rand(steps, self.crops, generator=g)
            centre = 0.5 + 0.15 * torch.randn(steps, self.crops, 2, generator=g)
            half = box[..., None] / 2
            boxes.append(box)
            centres.append(torch.minimum(torch.maximum(centre, half), 1 - half))
        self.box = torch.stack(boxes, 2).to(device)  # (steps, crops, B)
        self.centre = torch.stack(centres, 2).to(device)  # (steps, crops, B, 2)
        self.noise = device_generators(generators, device)

    def __call__(self, image: torch.Tensor, step: int) -> torch.Tensor:
        """Return crops x B images (crop-major) resampled to the output size, with noise."""
        c = image.shape[1]
        box = self.box[step].reshape(-1).to(image.dtype)
        centre = (self.centre[step].reshape(-1, 2) * 2 - 1).to(image.dtype)
        zero = torch.zeros_like(box)
        theta = torch.stack(
            [
                torch.stack([box, zero, centre[:, 0]], -1),
                torch.stack([zero, box, centre[:, 1]], -1),
            ],
            1,
        )
        tiled = image.repeat(self.crops, 1, 1, 1)
        grid = F.affine_grid(theta, [tiled.shape[0], c, *self.out_size], align_corners=False)
        crops = F.grid_sample(
            tiled, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        if self.settings.noise:
            shape = (self.crops, c, *self.out_size)
            noise = torch.stack(
                [
                    torch.randn(shape, generator=g, device=image.device)
                    + torch.rand(shape, generator=g, device=image.device)
                    - 0.5
                    for g in self.noise
                ],
                1,
            )
            crops = crops + self.settings.noise * noise.reshape_as(crops).to(crops.dtype)
        return crops


class AugmentSchedule:
    """Ghiasi et al.'s ViT augmentation: copies x B views a step (copy-major), each shifted
    (the canvas wraps around), zoomed and turned if asked, colour-shifted, with noise that
    decays to zero; every draw made up front from the images' own generators."""

    def __init__(
        self,
        settings: AugmentSettings,
        steps: int,
        generators: Sequence[torch.Generator],
        device: torch.device | str = "cpu",
    ):
        self.settings, self.steps, self.crops = settings, steps, settings.copies
        k, c = settings.copies, settings.colour
        shifts, scales, offsets, zooms, angles = [], [], [], [], []
        (lo, hi), spin = settings.zoom, math.radians(settings.rotation)
        for g in generators:
            shifts.append((torch.rand(steps, k, 2, generator=g) * 2 - 1) * settings.jitter)
            scales.append(1 + (torch.rand(steps, k, 3, generator=g) * 2 - 1) * c)
            offsets.append((torch.rand(steps, k, 3, generator=g) * 2 - 1) * c)
            if settings.reshapes:  # drawn after the preset's draws, which stay as they were
                zooms.append(lo + (hi - lo) * torch.rand(steps, k, generator=g))
                angles.append((torch.rand(steps, k, generator=g) * 2 - 1) * spin)
        self.shift = torch.stack(shifts, 2).to(device)  # (steps, copies, B, 2)
        self.scale = torch.stack(scales, 2).to(device)  # (steps, copies, B, 3)
        self.offset = torch.stack(offsets, 2).to(device)
        if settings.reshapes:
            self.zoom = torch.stack(zooms, 2).to(device)  # (steps, copies, B)
            self.angle = torch.stack(angles, 2).to(device)
        self.noise = device_generators(generators, device)

    def _reshape(self, views: torch.Tensor, step: int, k: int) -> torch.Tensor:
        """Zoom and turn copy k of each image about its centre; the canvas wraps around, so
        what a turned or zoomed-out view needs beyond the edge comes from the other side."""
        h, w = views.shape[-2:]
        reach = math.hypot(h / 2, w / 2) / self.settings.zoom[0]  # farthest sample, in px
        ph, pw = (max(0, math.ceil(reach - n / 2) + 1) for n in (h, w))
        rows = torch.arange(-ph, h + ph, device=views.device) % h  # wraps any number of times
        cols = torch.arange(-pw, w + pw, device=views.device) % w
        padded = views[:, :, rows][:, :, :, cols]
        hp, wp = padded.shape[-2:]
        zoom, angle = self.zoom[step, k].float(), self.angle[step, k].float()
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        zero = torch.zeros_like(cos)
        theta = torch.stack(
            [
                torch.stack([cos * w / wp, -sin * h / wp, zero], -1),
                torch.stack([sin * w / hp, cos * h / hp, zero], -1),
            ],
            1,
        ).to(views.dtype)
        grid = F.affine_grid(theta, list(views.shape), align_corners=False)
        return F.grid_sample(padded, grid, "bilinear", "border", align_corners=False)

    def __call__(self, image: torch.Tensor, step: int) -> torch.Tensor:
        """Return copies x B augmented views of a batch (copy-major)."""
        b, c, h, w = image.shape
        views = []
        for k in range(self.crops):
            dy = (self.shift[step, k, :, 0] * h).round().long().tolist()
            dx = (self.shift[step, k, :, 1] * w).round().long().tolist()
            moved = torch.stack([torch.roll(image[i], (dy[i], dx[i]), (1, 2)) for i in range(b)])
            if self.settings.reshapes:
                moved = self._reshape(moved, step, k)
            scale = self.scale[step, k, :, :c, None, None].to(image.dtype)
            offset = self.offset[step, k, :, :c, None, None].to(image.dtype)
            views.append((moved - 0.5) * scale + 0.5 + offset)
        out = torch.cat(views)
        sigma = self.settings.noise * (1 - step / max(1, self.steps - 1))
        if sigma > 0:
            noise = torch.stack(
                [torch.randn((self.crops, c, h, w), generator=g, device=image.device)
                 for g in self.noise],
                1,
            )  # fmt: skip
            out = out + sigma * noise.reshape_as(out).to(out.dtype)
        return out
