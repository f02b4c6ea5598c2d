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
        return torch.relu(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # fused native kernels only: elementwise ops on boolean masks cost 10-50x more
        (x,) = ctx.saved_tensors
        relu_grad = torch.ops.aten.threshold_backward(grad, x, 0)
        # reduce over the image's dims in place: flatten(1) would copy a channels-last tensor
        alive = relu_grad.abs().amax(dim=tuple(range(1, grad.dim()))) > 0
        if grad.device.type == "cpu" and bool(alive.all()):  # the usual case; no sync on CPU
            return relu_grad
        # where the ReLU passes nothing, keep the gradient except where it would push an
        # off unit further down (lucid: where x < 0 and grad > 0, no gradient)
        redirected = torch.where(x < 0, grad.clamp(max=0), grad)
        return torch.where(alive.view(-1, *[1] * (grad.dim() - 1)), relu_grad, redirected)


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
