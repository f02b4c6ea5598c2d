"""Register the shapes U-Net as model source ``shapes/unet``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from atlas.plugin import (
    DatasetError,
    DatasetSource,
    InputSpec,
    ModelAdapter,
    ModelSource,
    RegisterDatasets,
    RegisterModels,
    WeightsError,
    file_digest,
    hookimpl,
    unknown,
    unknown_name,
)

from .data import CLASSES, SIZE, make_sample
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
VAL_SEED = 1_000_000  # far from training's streams (seed 0) and evaluation's (10000)
VAL_SIZE = 100_000


class ShapesVal:
    """Generated validation images: image i is drawn from its own seed, with its label map."""

    classes = CLASSES  # the names of the label values

    def __len__(self) -> int:
        return VAL_SIZE

    def __getitem__(self, index: int):
        return make_sample(np.random.default_rng(VAL_SEED + int(index)))

    def identity(self) -> dict:
        return {"shapes": "val", "seed": VAL_SEED, "size": VAL_SIZE, "generator": "data.py v1"}


def load_dataset(name: str, **_) -> ShapesVal:
    """Return the generated validation set ``shapes/val``."""
    if name != "val":
        raise DatasetError(unknown("shapes data set", name, ["val"], "use 'shapes/val'"))
    return ShapesVal()


@hookimpl
def feature_atlas_register_models(register: RegisterModels) -> None:
    """Register the ``shapes`` namespace."""
    register("shapes", SOURCE)


@hookimpl
def feature_atlas_register_datasets(register: RegisterDatasets) -> None:
    """Register ``shapes/val``, generated images with their labels."""
    register("shapes", DatasetSource(load=load_dataset, names=lambda: ["val"]))
