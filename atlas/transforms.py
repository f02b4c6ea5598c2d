"""Random pad, jitter, scale and rotation as one batched affine resampling per step."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


def _default_scales() -> tuple[float, ...]:
    return tuple(round(0.9 + 0.02 * i, 2) for i in range(11))


@dataclass(frozen=True)
class TransformSettings:
    """lucid's standard stack: pad 12, jitter 8, scale 0.9-1.1, rotate ±10°, jitter 4."""

    pad: int = 12
    jitter: int = 8
    scales: tuple[float, ...] = field(default_factory=_default_scales)
    degrees: float = 10.0
    jitter2: int = 4

    def as_dict(self) -> dict:
        """Return plain data for cache keys."""
        return {
            "pad": self.pad,
            "jitter": self.jitter,
            "scales": list(self.scales),
            "degrees": self.degrees,
            "jitter2": self.jitter2,
        }


NO_TRANSFORMS = TransformSettings(pad=0, jitter=0, scales=(1.0,), degrees=0.0, jitter2=0)


class TransformSchedule:
    """Every step's random transform for every image, drawn up front from per-image generators."""

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
        d_in = torch.tensor([w / 2, h / 2], device=linear.device)
        d_out = torch.tensor([wo / 2, ho / 2], device=linear.device)
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
