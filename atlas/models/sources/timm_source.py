"""``timm/NAME``: every timm model, with its pretrained config as preprocessing."""

from __future__ import annotations

import os
from pathlib import Path

import timm
import torch

from ...errors import ModelError, WeightsError
from ..adapter import InputSpec, ModelAdapter
from ..weights import file_digest
from . import unknown_name
from .common import NO_WEIGHTS, random_init_digest, seeded_init
from .offline import reachable

HUB_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def names() -> list[str]:
    """Return every timm architecture name."""
    return timm.list_models()


def _known(name: str) -> bool:
    """Return True for an architecture or an architecture.tag timm knows."""
    return timm.is_model(name.split(".", 1)[0])


def _cached_hub_file(hub_id: str) -> Path | None:
    """Return a weights file of hub_id already in the Hugging Face cache, if any."""
    from huggingface_hub import try_to_load_from_cache

    for filename in HUB_FILES:
        found = try_to_load_from_cache(hub_id, filename)
        if isinstance(found, str):
            return Path(found)
    return None


def _pretrained_file(name: str) -> Path:
    """Find (or download, if the hub answers) the pretrained weights file of a timm model."""
    cfg = timm.models.get_pretrained_cfg(name) or timm.models.get_pretrained_cfg(
        name.split(".", 1)[0]
    )
    if cfg is None:
        raise WeightsError(f"timm/{name} has no pretrained weights; use weights = 'none'")
    if cfg.file and Path(cfg.file).is_file():
        return Path(cfg.file)
    hub_id = cfg.hf_hub_id
    if hub_id:
        cached = _cached_hub_file(hub_id)
        if cached:
            return cached
        url = f"https://huggingface.co/{hub_id}"
        if reachable(url):
            from huggingface_hub import hf_hub_download

            for filename in HUB_FILES:
                try:
                    return Path(hf_hub_download(hub_id, filename))
                except Exception:
                    continue
    from huggingface_hub.constants import HF_HUB_CACHE

    raise WeightsError(
        f"pretrained weights of timm/{name} are not in the Hugging Face cache ({HF_HUB_CACHE}"
        f"{', repo ' + hub_id if hub_id else ''}) and the hub cannot be reached; download them "
        "elsewhere and pass the file with `--weights PATH` (recipe: model.weights)"
    )


def _spec(module: torch.nn.Module, channels: int) -> InputSpec:
    """Read input size, mean and std from the model's pretrained config."""
    cfg = getattr(module, "pretrained_cfg", {}) or {}
    _, h, w = cfg.get("input_size", (3, 224, 224))
    mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))
    if len(mean) != channels:
        mean, std = (sum(mean) / len(mean),) * channels, (sum(std) / len(std),) * channels
    return InputSpec(channels=channels, size=(h, w), mean=mean, std=std)


def _labels(module: torch.nn.Module) -> list[str]:
    """Return ImageNet class names when the model has an ImageNet head."""
    if getattr(module, "num_classes", None) not in (1000, 11821, 21841, 21843):
        return []
    try:
        info = timm.data.ImageNetInfo(timm.data.infer_imagenet_subset(module) or "imagenet-1k")
        return [info.index_to_description(i) for i in range(module.num_classes)]
    except Exception:  # label files are optional metadata
        return []


def load(name: str, weights: str | None = None, registry=None, **options) -> ModelAdapter:
    """Create timm model NAME with random, pretrained or local-file weights."""
    if not _known(name):
        raise unknown_name("timm", name, names())
    kwargs = dict(options)
    digest = random_init_digest(timm)
    if weights not in NO_WEIGHTS:
        wanted = name if weights in ("pretrained", "DEFAULT", "default") else None
        path = Path(weights) if wanted is None else _pretrained_file(wanted)
        if not path.is_file():
            raise WeightsError(f"weights file {path} for timm/{name} does not exist")
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": os.fspath(path)})
        digest = file_digest(path)
    try:
        with seeded_init():
            module = timm.create_model(name, **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"timm/{name} cannot be created with {kwargs}: {exc}") from None
    channels = int(options.get("in_chans", 3))
    labels = _labels(module)
    return ModelAdapter(
        module=module,
        source=f"timm/{name}",
        input=_spec(module, channels),
        weights=None if weights in NO_WEIGHTS else str(weights),
        weights_digest=digest,
        labels={"output": labels} if labels else {},
        description=f"timm {timm.__version__} {name}",
    )
