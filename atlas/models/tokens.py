"""Token layers of vision transformers as grids: a layer's (B, T, D) output is T = P + h·w
tokens, P prefix tokens (class, distillation, registers) and then the patches row by row.
Where the grid is known, every reader of activations sees the patch tokens as a (B, D, h, w)
feature map, so a channel is the mean over patches only, ``neuron(x, y)`` and masks address
patch positions, and dataset examples have positions, as for a convolutional layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class TokenGrid:
    """A transformer's token layout: ``prefix`` tokens, then an h × w grid of patches."""

    prefix: int
    grid: tuple[int, int]

    @property
    def tokens(self) -> int:
        return self.prefix + self.patches

    @property
    def patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def fits(self, shape: tuple[int, ...]) -> bool:
        """Return True if an output of this shape (without the batch) is a token layer of
        this grid, (tokens, features): with the prefix tokens, or before they are added
        (timm's ``patch_embed``: the patches alone)."""
        return len(shape) == 2 and shape[0] in (self.tokens, self.patches)

    def as_map(self, act: torch.Tensor) -> torch.Tensor:
        """Return (B, T, D) tokens as the (B, D, h, w) map of their patches."""
        patches = act[:, act.shape[1] - self.patches :]
        return patches.transpose(1, 2).reshape(act.shape[0], act.shape[2], *self.grid)

    def as_tokens(self, grid: torch.Tensor, count: int | None = None) -> torch.Tensor:
        """Return a (B, D, h, w) map as (B, T, D) tokens of a layer of count tokens (default:
        with the prefix), the prefix tokens zero."""
        b, d = grid.shape[:2]
        patches = grid.reshape(b, d, -1).transpose(1, 2)
        prefix = patches.new_zeros(b, (count or self.tokens) - self.patches, d)
        return torch.cat([prefix, patches], 1)

    def describe(self, count: int | None = None) -> str:
        """Say how a layer's count tokens (default: with the prefix) are laid out, e.g.
        ``197 tokens = 1 + 14×14``, or ``196 tokens = 14×14`` before the prefix is added."""
        h, w = self.grid
        if count == self.patches and self.prefix:
            return f"{count} tokens = {h}×{w}, the patches before the prefix tokens are added"
        return f"{self.tokens} tokens = {self.prefix} + {h}×{w}"


def seen(tokens: TokenGrid | None, out: object) -> object:
    """Return a layer's output as every reader sees it: a token layer of the grid as the
    map of its patch tokens, anything else as it is."""
    if tokens is not None and isinstance(out, torch.Tensor) and tokens.fits(out.shape[1:]):
        return tokens.as_map(out)
    return out


def _pair(value) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (tuple, list)) else (value, value)


def detect(module: nn.Module) -> TokenGrid | None:
    """Return the token grid of a timm or torchvision vision transformer (None for
    anything else): timm from ``num_prefix_tokens`` and ``patch_embed.grid_size``,
    torchvision from ``class_token`` and ``image_size // patch_size``."""
    embed = getattr(module, "patch_embed", None)
    prefix = getattr(module, "num_prefix_tokens", None)
    grid = getattr(embed, "grid_size", None)
    if isinstance(prefix, int) and grid is not None:
        return TokenGrid(prefix, _pair(grid))
    token = getattr(module, "class_token", None)
    size, patch = getattr(module, "image_size", None), getattr(module, "patch_size", None)
    if isinstance(token, torch.Tensor) and isinstance(size, int) and isinstance(patch, int):
        side = size // patch
        return TokenGrid(token.shape[1], (side, side))
    return None
