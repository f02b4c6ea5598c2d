"""Helpers the model sources share: seeded random weights and state-dict files."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from ...errors import WeightsError

INIT_SEED = 0
RANDOM_INIT = "random-init-seed"  # how the digests of random weights start
NO_WEIGHTS = (None, "", "none", "None", "random")  # weight names that mean random init
IGNORED_PREFIXES = ("aux_classifier.",)  # training-only heads that atlases never use


def random_init_digest(*libraries) -> str:
    """Name seeded random weights by the versions whose init code made them."""
    versions = [f"{lib.__name__}-{lib.__version__.split('+')[0]}" for lib in (torch, *libraries)]
    return f"{RANDOM_INIT}{INIT_SEED}:" + ":".join(versions)


def is_random_init(digest: str) -> bool:
    """Return True for the digest of seeded random (untrained) weights."""
    return digest.startswith(RANDOM_INIT)


def random_weights_note(source: str, fix: str = "set model.weights") -> str:
    """Return the line that says a model runs untrained, and how to give it weights."""
    return (
        f"{source} runs with random weights; {fix} for trained ones "
        '(torchvision: "DEFAULT", timm: "pretrained")'
    )


def warn_random_weights(source: str, digest: str, fix: str) -> None:
    """Warn that the model is untrained (a UserWarning pointing at the line that called the
    public function whose helper calls this)."""
    if is_random_init(digest):
        warnings.warn(random_weights_note(source, fix), UserWarning, stacklevel=4)


@contextlib.contextmanager
def seeded_init(seed: int = INIT_SEED) -> Iterator[None]:
    """Make random initialisation inside the block repeatable, leaving global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def read_state_dict(path: Path, what: str) -> dict:
    """Read a state dict from a .safetensors file or a torch file (tensors only)."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} for {what} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read weights file {path} for {what}: {exc}") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsError(
            f"weights file {path} for {what} holds a {type(state).__name__}, not a state dict"
        )
    return state


def load_state_file(module: torch.nn.Module, path: Path, what: str) -> None:
    """Load a state-dict file into module, naming the file and the mismatched keys on error."""
    state = read_state_dict(path, what)
    state = {
        k.removeprefix("module."): v for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)
    }
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[:3]
        raise WeightsError(f"weights file {path} does not fit {what}: {' '.join(first)}") from None
