"""Lucid's ReLU gradient redirect, and its GELU counterpart: let gradient reach units that
are off, early on."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn


def _redirect(
    grad: torch.Tensor, x: torch.Tensor, plain: torch.Tensor, on: torch.Tensor | None = None
) -> torch.Tensor:
    """Return plain (the layer's own input gradient) for images where some unit with a
    gradient is on (x > 0), else lucid's redirected gradient: the output's gradient where
    x < 0 raises the unit; where it would lower it, the layer's own (ReLU: none)."""
    # fused native kernels only: elementwise ops on boolean masks cost 10-50x more;
    # reduce over the image's dims in place: flatten(1) would copy a channels-last tensor
    on = torch.ops.aten.threshold_backward(grad, x, 0) if on is None else on
    alive = on.abs().amax(dim=tuple(range(1, grad.dim()))) > 0
    if grad.device.type == "cpu" and bool(alive.all()):  # the usual case; no sync on CPU
        return plain
    # in loss terms grad < 0 raises the unit; the slope below 0 is under 1, so the minimum
    # is grad there and the layer's own gradient where grad > 0 (a unit being lowered)
    redirected = torch.where(x < 0, torch.minimum(grad, plain), grad)
    return torch.where(alive.view(-1, *[1] * (grad.dim() - 1)), plain, redirected)


class _RedirectedReLU(torch.autograd.Function):
    """ReLU forward; in backward, an image whose ReLU passes no gradient gets the gradient
    that would raise negative inputs instead of none (lucid's redirected_relu_grad)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.relu(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        plain = torch.ops.aten.threshold_backward(grad, x, 0)
        return _redirect(grad, x, plain, on=plain)


class _RedirectedGELU(torch.autograd.Function):
    """GELU forward; in backward, an image where no unit with a gradient is positive gets
    the redirected gradient. Below x = -0.75 GELU falls towards 0 as x falls, so its own
    gradient pushes an off unit down to -inf, where its value (0) beats any it had."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, approximate: str) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        return F.gelu(x, approximate=approximate)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        plain = torch.ops.aten.gelu_backward(grad, x, approximate=ctx.approximate)
        return _redirect(grad, x, plain), None


def redirected_relu(x: torch.Tensor) -> torch.Tensor:
    """Apply ReLU with the redirected gradient."""
    return _RedirectedReLU.apply(x)


def redirected_gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """Apply GELU with the redirected gradient."""
    return _RedirectedGELU.apply(x, approximate)


def _redirected_forward(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Return the redirected forward for an nn.ReLU or nn.GELU instance, else None."""
    if type(module) is nn.ReLU:
        return redirected_relu
    if type(module) is nn.GELU:
        return lambda x: redirected_gelu(x, module.approximate)
    return None


def _redirectable(module: nn.Module) -> dict[nn.Module, Callable]:
    """Return each nn.ReLU and nn.GELU of module with its redirected forward (none in
    TorchScript modules, which cannot be patched)."""
    if isinstance(module, torch.jit.ScriptModule):
        return {}
    forwards = {m: _redirected_forward(m) for m in module.modules()}
    return {m: forward for m, forward in forwards.items() if forward is not None}


def has_gelus(module: nn.Module) -> bool:
    """Return whether the redirect changes any nn.GELU of module (said in cache keys)."""
    # timm's own GELU class (its ConvNeXt) is not nn.GELU: neither redirected nor keyed
    return any(type(m) is nn.GELU for m in _redirectable(module))


@contextlib.contextmanager
def redirect_activations(module: nn.Module) -> Iterator[int]:
    """Give every nn.ReLU and nn.GELU in module the redirected gradient inside the block.

    Only the instances' forward is replaced, so hooks on them keep working; one whose
    forward is already replaced (by the user, or an enclosing block) is left as it is.
    Yields how many were redirected.
    """
    patched = {m: f for m, f in _redirectable(module).items() if "forward" not in m.__dict__}
    for m, forward in patched.items():
        m.forward = forward
    try:
        yield len(patched)
    finally:
        for m in patched:
            del m.forward
