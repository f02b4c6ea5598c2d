"""A small U-Net that labels every pixel with one of the shapes classes."""

from __future__ import annotations

import torch
from torch import nn

from .data import CLASSES


def _block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 convolutions with batch norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class ShapesUNet(nn.Module):
    """Encoder 16-32-64, decoder with skips, 1x1 head to one logit map per class."""

    def __init__(self, classes: int = len(CLASSES), width: int = 16):
        super().__init__()
        w = width
        self.enc1 = _block(3, w)
        self.enc2 = _block(w, 2 * w)
        self.mid = _block(2 * w, 4 * w)
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.dec2 = _block(4 * w + 2 * w, 2 * w)
        self.dec1 = _block(2 * w + w, w)
        self.head = nn.Conv2d(w, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up(d2), e1], 1))
        return self.head(d1)


class Attention(nn.Module):
    """Multi-head self-attention over all tokens (timm's layout: qkv, then proj)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    """fc1, GELU (``act``: the hidden units people study), fc2."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """A pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, ratio: int = 4):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, ratio * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ShapesViT(nn.Module):
    """A small vision transformer that labels every pixel: 8 px patches of the 64 px
    image (8 x 8 tokens and a class token), a few blocks, and a head that turns each patch
    token into its 8 x 8 pixels' class logits (a pixel-shuffle upsampling), so its output
    is a class map like the U-Net's."""

    def __init__(
        self, classes: int = len(CLASSES), dim: int = 96, depth: int = 4, heads: int = 4,
        patch: int = 8, size: int = 64,
    ):  # fmt: skip
        super().__init__()
        self.patch, self.grid, self.classes = patch, size // patch, classes
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + self.grid**2, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes * patch * patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens], 1) + self.pos_embed
        patches = self.head(self.norm(self.blocks(tokens)))[:, 1:]  # (B, g*g, K*p*p)
        g, p, k = self.grid, self.patch, self.classes
        maps = patches.view(b, g, g, k, p, p).permute(0, 3, 1, 4, 2, 5)
        return maps.reshape(b, k, g * p, g * p)


def _dilated(cin: int, cout: int, dilation: int) -> nn.Sequential:
    """A 3x3 convolution at a dilation, group norm and SiLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=False),
        nn.GroupNorm(8, cout),
        nn.SiLU(),
    )


class ShapesFCN(nn.Module):
    """The judge: a dilated fully convolutional net (no pooling, no skips, group norm, SiLU)
    that sees the image at half resolution and upsamples its class logits, an architecture
    unlike the U-Net's and the ViT's."""

    def __init__(self, classes: int = len(CLASSES), width: int = 48):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 4, stride=2, padding=1), nn.SiLU())
        self.context = nn.Sequential(*[_dilated(width, width, d) for d in (1, 2, 4, 8, 2, 1)])
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.context(self.stem(x)))
        return nn.functional.interpolate(logits, size=x.shape[-2:], mode="bilinear")
