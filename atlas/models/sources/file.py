"""``file:PATH``: a TorchScript file, a pickled module (opt-in) or a state dict plus ``arch``."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from ...errors import ModelError, WeightsError
from ..adapter import InputSpec, ModelAdapter
from ..weights import file_digest

PICKLE_START = b"\x80"  # the PROTO opcode that pickles since protocol 2 begin with


def _is_torchscript(path: Path) -> bool:
    """Return True for a TorchScript archive (a zip holding compiled code)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name or name.startswith("code/") for name in archive.namelist())


def _unpickle_module(path: Path) -> torch.nn.Module:
    """Load a whole pickled module; this runs code from the file."""
    module = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"{path} holds a {type(module).__name__}, not a torch.nn.Module")
    return module


def _explain_plain_file(path: Path) -> ModelError:
    """Say what a non-TorchScript file needs: an arch for a state dict, or the pickle opt-in."""
    with path.open("rb") as handle:
        first = handle.read(1)
    if not (zipfile.is_zipfile(path) or first == PICKLE_START):
        return ModelError(
            f"{path} cannot be read as a torch file: it is neither a torch.save "
            "archive nor a pickle"
        )
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return ModelError(
            f"{path} holds a pickled module; loading it runs code from the file. If you trust "
            "it, set model.options.trust_pickle = true"
        )
    return ModelError(
        f"{path} holds a state dict; name its architecture with model.options.arch, "
        "e.g. arch = 'torchvision/resnet18'"
    )


def load(
    name: str,
    weights: str | None = None,
    registry=None,
    arch: str | None = None,
    trust_pickle: bool = False,
    **options,
) -> ModelAdapter:
    """Load the model stored at path NAME (with arch, a state dict for that model source)."""
    path = Path(name).expanduser()
    if not path.is_file():
        raise WeightsError(f"model file {path} does not exist")
    if arch:
        if registry is None:
            raise ModelError(f"file:{name} with arch {arch!r} needs the registry to load it")
        adapter = registry.load_model(arch, weights=str(path), **options)
        adapter.source = f"file:{name}"
        return adapter
    if _is_torchscript(path):
        module = torch.jit.load(str(path), map_location="cpu")
    elif trust_pickle:
        module = _unpickle_module(path)
    else:
        raise _explain_plain_file(path)
    if options:
        raise ModelError(
            f"file:{name} takes no model.options besides arch, trust_pickle and "
            f"the input keys; got {sorted(options)}"
        )
    return ModelAdapter(
        module=module,
        source=f"file:{name}",
        input=InputSpec(),
        weights=str(path),
        weights_digest=file_digest(path),
    )


def names() -> list[str]:
    """File models have no fixed names."""
    return []
