"""Which device a job runs on: ``auto`` picks CUDA when there is one, and with several
workers on a CUDA machine each worker keeps one device for its life (worker i on
``cuda:i``, round the devices again when there are more workers than devices)."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import IO

import torch

PER_WORKER = "cuda:per-worker"  # a job's device when every worker pins its own
MAX_SLOTS = 256


def resolve_device(name: str) -> torch.device:
    """Turn ``auto`` into CUDA when available, else CPU, and ``cuda:per-worker`` into this
    worker's own CUDA device; pass other names through."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == PER_WORKER:
        return worker_device()
    return torch.device(name)


def job_device(name: str, workers: int) -> str:
    """Return the device to give jobs: ``cuda:per-worker`` when several workers share a
    CUDA machine and the recipe named no device index, else the name as it is."""
    plain = name in ("auto", "cuda") and resolve_device(name).type == "cuda"
    return PER_WORKER if plain and workers > 1 else name


def workers_per_device(name: str, workers: int) -> int:
    """Return how many workers share one device (their batches split its memory)."""
    if name != PER_WORKER:
        return workers
    return -(-workers // max(1, torch.cuda.device_count()))


def worker_device() -> torch.device:
    """Return this worker's CUDA device: slot i of the machine's workers gets cuda:i."""
    count = torch.cuda.device_count()
    if count == 0:
        raise RuntimeError("this worker sees no CUDA device")
    device = torch.device("cuda", worker_slot() % count)
    torch.cuda.set_device(device)
    return device


def worker_slot() -> int:
    """Return this process's worker slot: the lowest one no other live process holds."""
    return _claim(_slot_dir())[0]


def _slot_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"feature-atlas-{os.getuid()}-workers"


@functools.cache
def _claim(folder: Path) -> tuple[int, IO | None]:
    """Hold an exclusive lock on the lowest free slot file in folder for the life of this
    process (the kernel frees it when the process ends, however it ends)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    for slot in range(MAX_SLOTS):
        handle = open(folder / f"slot-{slot}.lock", "w")  # noqa: SIM115 - held until exit
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return slot, handle
    return os.getpid() % MAX_SLOTS, None
