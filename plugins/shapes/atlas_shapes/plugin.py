"""Register the shapes U-Net as model source ``shapes/unet``."""

from __future__ import annotations

from pathlib import Path

import torch

from atlas.adapter import InputSpec, ModelAdapter
from atlas.errors import WeightsError
from atlas.hookspecs import hookimpl
from atlas.sources import ModelSource, unknown_name
from atlas.weights import file_digest

from .data import CLASSES, SIZE
from .model import ShapesUNet
from .train import MEAN, STD, WEIGHTS_DIR

NAMES = ("unet",)


def weights_path(weights: str | None) -> Path:
    """Return the shipped weights for None or 'default', else the given file."""
    if weights in (None, "default"):
        return WEIGHTS_DIR / "shapes_unet.pt"
    return Path(weights)


def load(name: str, weights: str | None = None, registry=None, **options) -> ModelAdapter:
    """Build the shapes U-Net with its shipped (or given) weights."""
    if name not in NAMES:
        raise unknown_name("shapes", name, NAMES)
    path = weights_path(weights)
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} for shapes/{name} does not exist; "
            "train it with `python -m atlas_shapes.train --out DIR`"
        )
    module = ShapesUNet(**options)
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return ModelAdapter(
        module=module,
        source=f"shapes/{name}",
        input=InputSpec(channels=3, size=(SIZE, SIZE), mean=(MEAN,) * 3, std=(STD,) * 3),
        weights=weights or "default",
        weights_digest=file_digest(path),
        labels={"head": CLASSES, "output": CLASSES},
        description="U-Net trained on generated shapes and textures",
    )


SOURCE = ModelSource(load=load, names=lambda: NAMES)


@hookimpl
def feature_atlas_register_models(register) -> None:
    """Register the ``shapes`` namespace."""
    register("shapes", SOURCE)
