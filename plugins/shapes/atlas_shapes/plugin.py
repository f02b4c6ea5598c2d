"""Register the shapes models as model sources ``shapes/unet``, ``shapes/vit`` and
``shapes/judge`` (a model only for judging pictures), and the generated validation images as
data set ``shapes/val``."""

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
    TokenGrid,
    WeightsError,
    file_digest,
    hookimpl,
    unknown,
    unknown_name,
)

from .data import CLASSES, SIZE, make_sample
from .model import ShapesFCN, ShapesUNet, ShapesViT
from .train import MEAN, STD, WEIGHTS_DIR

NAMES = ("unet", "vit", "judge")
MODULES = {"unet": ShapesUNet, "vit": ShapesViT, "judge": ShapesFCN}
DESCRIPTIONS = {
    "unet": "U-Net trained on generated shapes and textures",
    "vit": "vision transformer (8 px patches, 4 blocks) trained on generated shapes and textures",
    "judge": "dilated FCN trained from another seed on other sizes, colours, noise and blur; "
    "it judges pictures and is never visualised",
}


def weights_path(name: str, weights: str | None) -> Path:
    """Return the shipped weights for None or 'default', else the given file."""
    if weights in (None, "default"):
        return WEIGHTS_DIR / f"shapes_{name}.pt"
    return Path(weights)


def load(name: str, weights: str | None = None, registry=None, **options) -> ModelAdapter:
    """Build a shapes model with its shipped (or given) weights."""
    if name not in NAMES:
        raise unknown_name("shapes", name, NAMES)
    path = weights_path(name, weights)
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} for shapes/{name} does not exist; train it with "
            f"`python -m atlas_shapes.train --model {name} --out DIR`"
        )
    module = MODULES[name](**options)
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return ModelAdapter(
        module=module,
        source=f"shapes/{name}",
        input=InputSpec(channels=3, size=(SIZE, SIZE), mean=(MEAN,) * 3, std=(STD,) * 3),
        weights=weights or "default",
        weights_digest=file_digest(path),
        labels={"head": CLASSES, "output": CLASSES},
        description=DESCRIPTIONS[name],
        tokens=TokenGrid(1, (module.grid,) * 2) if name == "vit" else None,
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
