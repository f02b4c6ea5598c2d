"""Small constant tensors on a device, copied there once.

The optimisation loop needs a few constants every step (normalisation, the colour matrix,
channel indices, mask weights). Made afresh from host data they would be a host-to-device
copy per step, and a blocking copy makes a GPU's queue drain before the step can go on.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch


def constant(
    values: Sequence[float] | np.ndarray, device: torch.device | str, dtype: torch.dtype
) -> torch.Tensor:
    """Return values as a tensor on device, made once per (values, device, dtype).

    The tensor is shared between callers: never modify it in place.
    """
    array = np.ascontiguousarray(values)
    return _made(array.tobytes(), array.shape, array.dtype.str, str(torch.device(device)), dtype)


@functools.lru_cache(maxsize=64)  # a few per batch; mask weights can be large
def _made(
    data: bytes, shape: tuple[int, ...], kind: str, device: str, dtype: torch.dtype
) -> torch.Tensor:
    array = np.frombuffer(data, dtype=kind).reshape(shape)
    with torch.inference_mode(False):  # usable later with autograd too
        return torch.tensor(array, dtype=dtype, device=device)
