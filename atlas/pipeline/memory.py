"""Size batches to the memory at hand, so that no recipe gets the build killed.

On CPU an out-of-memory is a kill by the kernel, not an exception that halving could
catch; so before any batch runs, the memory one picture needs is measured (the tensors
autograd keeps for the backward pass of a two-image step on the padded canvas) and each
batch is capped to what fits in a share of the memory available.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..engine.render import model_input
from ..models.adapter import ModelAdapter
from ..models.layers import PROBE_MARGIN, Probe

SHARE = 0.5  # of the available memory that the batches of all workers may use together
SAFETY = 3.0  # saved tensors, their gradients and the kernels' workspace


def available_bytes(device: torch.device) -> int:
    """Return the memory free for new work on device (CUDA: free memory; CPU: MemAvailable)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def bytes_per_picture(
    adapter: ModelAdapter,
    layers: frozenset[str],
    size: tuple[int, int],
    device: torch.device,
    model_size: tuple[int, int] | None = None,
) -> int:
    """Measure what one picture's optimisation step keeps for its backward pass, in bytes."""
    saved = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += tensor.numel() * tensor.element_size()
        return tensor

    h, w = size
    x = torch.rand(2, adapter.input.channels, h + PROBE_MARGIN, w + PROBE_MARGIN, device=device)
    x.requires_grad_(True)
    adapter.module.to(device)
    with (
        torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
        Probe(adapter, layers) as probe,
    ):
        probe(model_input(adapter, x, model_size))  # resized as the optimiser resizes it
    return max(1, (saved + x.numel() * x.element_size()) // 2)


def fit_batch(requested: int, per_picture: int, available: int, workers: int = 1) -> int:
    """Return the largest batch up to requested whose pictures fit in the memory share."""
    budget = available * SHARE / max(1, workers)
    return max(1, min(requested, int(budget // (per_picture * SAFETY))))
