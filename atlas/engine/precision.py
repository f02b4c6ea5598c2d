"""The dtype the model runs in while optimising: fp32, bf16, or bf16 where it is native."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def native_bf16(device: torch.device) -> bool:
    """Return True if device computes in bf16 natively: a CUDA GPU that supports it, or a
    CPU with bf16 instructions (x86 AVX512-BF16 or AMX, Arm BF16), not emulated."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16", "bf16"})


@functools.cache
def _cpu_flags() -> frozenset[str]:
    """Return the CPU's feature flags as Linux lists them (none elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    flags = set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return frozenset(flags)


def compute_dtype(precision: str, device: torch.device) -> torch.dtype:
    """Return the dtype the model runs in: ``auto`` is bf16 where the device computes bf16
    natively (most CUDA GPUs, CPUs with AVX512-BF16 or AMX), else fp32."""
    if precision == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    return PRECISIONS[precision]
