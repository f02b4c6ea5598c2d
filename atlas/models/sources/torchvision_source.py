"""``torchvision/NAME``: every classification and segmentation model torchvision lists."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from torchvision import models

from ...errors import ModelError, WeightsError, unknown
from ..adapter import IMAGENET_MEAN, IMAGENET_STD, InputSpec, ModelAdapter
from ..weights import file_digest
from . import unknown_name
from .common import NO_WEIGHTS, load_state_file, random_init_digest, seeded_init
from .offline import reachable


def names() -> list[str]:
    """Return the classification and segmentation model names of torchvision."""
    return models.list_models(module=models) + models.list_models(module=models.segmentation)


def _is_segmentation(name: str) -> bool:
    return name in models.list_models(module=models.segmentation)


def _weights_enum(name: str, weights: str):
    """Return the weight enum member for 'DEFAULT', 'IMAGENET1K_V2' or 'Enum.MEMBER'."""
    enum = models.get_model_weights(name)
    member = weights.split(".", 1)[1] if weights.startswith(enum.__name__ + ".") else weights
    if member == "DEFAULT":
        return enum.DEFAULT
    try:
        return enum[member]
    except KeyError:
        choices = ["DEFAULT", *enum.__members__]
        raise WeightsError(unknown(f"weights for torchvision/{name}", weights, choices)) from None


def _hub_file(url: str) -> Path:
    """Return where torch hub caches the file of a weights URL."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _fetch(name: str, enum_member) -> Path:
    """Return the local file of a weight enum, downloading it only if the host answers."""
    path = _hub_file(enum_member.url)
    if path.is_file():
        return path
    if not reachable(enum_member.url):
        raise WeightsError(
            f"weights {enum_member} for torchvision/{name} are not in the torch hub cache "
            f"({path}) and {enum_member.url} cannot be reached; copy the file there, or pass "
            "a local file with `--weights PATH` (recipe: model.weights)"
        )
    torch.hub.download_url_to_file(enum_member.url, str(path), progress=False)
    return path


def _spec(name: str, meta_source) -> InputSpec:
    """Read size, mean and std from a weight enum's transforms, or use ImageNet's."""
    segmentation = _is_segmentation(name)
    if meta_source is None:
        return InputSpec(size=(520, 520) if segmentation else (224, 224))
    preset = meta_source.transforms()
    size = getattr(preset, "crop_size", None) or getattr(preset, "resize_size", None) or [224]
    size = (size[0], size[-1]) if len(size) > 1 else (size[0], size[0])
    return InputSpec(
        size=size,
        mean=tuple(getattr(preset, "mean", IMAGENET_MEAN)),
        std=tuple(getattr(preset, "std", IMAGENET_STD)),
    )


def _build(name: str, options: dict, **weights) -> torch.nn.Module:
    """Call torchvision's builder, turning bad options into a clear error."""
    try:
        return models.get_model(name, **weights, **options)
    except (TypeError, ValueError) as exc:
        raise ModelError(
            f"torchvision/{name} cannot be built with model.options {options}: {exc}"
        ) from None


def _random_or_local(name: str, weights: str | None, options: dict) -> torch.nn.Module:
    """Build with seeded random weights, then load a local state-dict file if given."""
    extra = {"weights_backbone": None} if _is_segmentation(name) else {}
    with seeded_init():
        module = _build(name, options, weights=None, **extra)
    if weights not in NO_WEIGHTS:
        load_state_file(module, Path(weights), f"torchvision/{name}")
    return module


def _is_file_name(weights: str) -> bool:
    return Path(weights).suffix in (".pt", ".pth", ".bin", ".safetensors") or "/" in weights


def load(name: str, weights: str | None = None, registry=None, **options) -> ModelAdapter:
    """Build torchvision model NAME with a weight enum, a local file or random weights."""
    if name not in names():
        raise unknown_name("torchvision", name, names())
    enum = models.get_model_weights(name)
    member = None
    if weights in NO_WEIGHTS or _is_file_name(weights):
        module = _random_or_local(name, weights, options)
        no_weights = weights in NO_WEIGHTS
        digest = random_init_digest(torchvision) if no_weights else file_digest(weights)
    else:
        member = _weights_enum(name, weights)
        digest = file_digest(_fetch(name, member))
        module = _build(name, options, weights=member)  # reads the file just fetched
    meta = member or getattr(enum, "DEFAULT", None)
    labels = list(meta.meta.get("categories", [])) if meta is not None else []
    if "num_classes" in options and options["num_classes"] != len(labels):
        labels = []
    return ModelAdapter(
        module=module,
        source=f"torchvision/{name}",
        input=_spec(name, meta),
        weights=None if weights in NO_WEIGHTS else str(weights),
        weights_digest=digest,
        labels={"output": labels} if labels else {},
        description=f"torchvision {torchvision.__version__} {name}",
    )
