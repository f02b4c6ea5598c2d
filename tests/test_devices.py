"""Several workers on a CUDA machine each keep a device of their own."""

import subprocess
import sys

import pytest

from atlas.pipeline import devices

CLAIM = (
    "import sys, time; from atlas.pipeline import devices; "
    "print(devices.worker_slot(), flush=True); "
    "sys.stdin.readline()"
)


@pytest.fixture
def slots(tmp_path, monkeypatch):
    """Point the slot lock files at a fresh folder, as on a machine with no workers yet."""
    monkeypatch.setattr(devices.tempfile, "gettempdir", lambda: str(tmp_path))
    devices._claim.cache_clear()
    yield tmp_path
    devices._claim.cache_clear()


def _worker(tmp_path) -> subprocess.Popen:
    """Start a process that claims a slot, prints it and holds it until told to end."""
    code = f"import tempfile; tempfile.tempdir = {str(tmp_path)!r}; " + CLAIM
    return subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def test_live_workers_hold_distinct_slots_and_a_dead_one_frees_its_own(slots):
    first, second = _worker(slots), _worker(slots)
    held = {"first": int(first.stdout.readline()), "second": int(second.stdout.readline())}
    assert sorted(held.values()) == [0, 1]
    first.kill()  # dies without cleaning up: the kernel releases its lock
    first.wait()
    third = _worker(slots)
    assert int(third.stdout.readline()) == held["first"]  # the dead worker's slot, no other
    second.communicate("\n")
    third.communicate("\n")
    assert devices.worker_slot() == 0  # everyone else has ended


def test_a_slot_is_kept_for_the_life_of_the_process(slots):
    assert devices.worker_slot() == devices.worker_slot()


def test_only_a_plain_cuda_device_with_several_workers_is_pinned(monkeypatch):
    monkeypatch.setattr(devices.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(devices.torch.cuda, "device_count", lambda: 2)
    assert devices.job_device("cuda", 4) == devices.PER_WORKER
    assert devices.job_device("auto", 2) == devices.PER_WORKER
    assert devices.job_device("cuda", 1) == "cuda"
    assert devices.job_device("cuda:1", 4) == "cuda:1"
    assert devices.job_device("cpu", 4) == "cpu"
    assert devices.workers_per_device(devices.PER_WORKER, 4) == 2
    assert devices.workers_per_device(devices.PER_WORKER, 3) == 2
    assert devices.workers_per_device("cpu", 3) == 3


def test_on_a_machine_without_cuda_nothing_is_pinned():
    if devices.torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert devices.job_device("auto", 4) == "auto"
