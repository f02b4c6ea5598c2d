"""Lucid's ReLU gradient redirect: let gradient reach units that are off, early on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class _RedirectedReLU(torch.autograd.Function):
    """ReLU forward; in backward, an image whose ReLU passes no gradient gets the gradient
    that would raise negative inputs instead of none (lucid's redirected_relu_grad)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        relu_grad = grad * (x > 0)
        redirected = torch.where((x < 0) & (grad > 0), torch.zeros_like(grad), grad)
        alive = relu_grad.flatten(1).norm(dim=1) > 0
        return torch.where(alive.view(-1, *[1] * (x.dim() - 1)), relu_grad, redirected)


def redirected_relu(x: torch.Tensor) -> torch.Tensor:
    """Apply ReLU with the redirected gradient."""
    return _RedirectedReLU.apply(x)


@contextlib.contextmanager
def redirect_relus(module: nn.Module) -> Iterator[int]:
    """Give every nn.ReLU in module the redirected gradient inside the block.

    Only the instances' forward is replaced, so hooks on them keep working. Yields how
    many ReLUs were redirected (none in TorchScript modules, which cannot be patched).
    """
    relus = (
        []
        if isinstance(module, torch.jit.ScriptModule)
        else [m for m in module.modules() if type(m) is nn.ReLU]
    )
    for relu in relus:
        relu.forward = redirected_relu
    try:
        yield len(relus)
    finally:
        for relu in relus:
            del relu.forward
