"""The core's own plugin: built-in objectives, regularizers, parameterizations, models and
data sets. Loaded by name, like any plugin, through the public contract."""

from __future__ import annotations

import importlib

from .engine import objectives, params, regularizers
from .plugin import (
    DatasetSource,
    ModelSource,
    Option,
    Parameterization,
    RegisterDatasets,
    RegisterModels,
    RegisterObjectives,
    RegisterParameterizations,
    RegisterRegularizers,
    hookimpl,
)

SPECTRUM_HELP = "write one with `atlas spectrum FOLDER_OR_DATASET --out FILE`"


@hookimpl
def feature_atlas_register_objectives(register: RegisterObjectives) -> None:
    """Register channel, neuron, layer, direction and diversity objectives."""
    register("channel", objectives.channel, channels=True)
    register("neuron", objectives.neuron, channels=True)
    register("layer", objectives.layer)
    register("direction", objectives.direction)
    register("diversity", objectives.diversity)


@hookimpl
def feature_atlas_register_regularizers(register: RegisterRegularizers) -> None:
    """Register total variation, L1, L2 and blur penalties."""
    register("tv", regularizers.total_variation)
    register("l1", regularizers.l1)
    register("l2", regularizers.l2)
    register("blur", regularizers.blur)


@hookimpl
def feature_atlas_register_parameterizations(register: RegisterParameterizations) -> None:
    """Register the FFT, pixel, MACO and CPPN parameterizations."""
    decay = Option("decay", float, 1.0, help="the spectrum's 1/f^decay scale")
    register("fft", Parameterization(params.FFTImage, (decay,), alpha=True, seedable=True))
    register("pixel", Parameterization(params.PixelImage, alpha=True, seedable=True))
    spectrum = Option(
        "spectrum", str, None, file=True, help=SPECTRUM_HELP, check=params.check_spectrum
    )
    contrast = Option(
        "contrast", float, params.MACO_CONTRAST, keyed=True, help=params.MACO_CONTRAST_HELP
    )
    register(
        "maco",
        Parameterization(
            params.MacoImage, (spectrum, contrast), lr=1.0, optimizer="nadam", transforms="crops"
        ),
    )
    register("cppn", Parameterization(params.CPPNImage, lr=0.005, transforms=False, alpha=True))


def _lazy(module: str, name: str):
    """Return a function that imports atlas.<module> on first call (torchvision and timm
    take seconds to import, and most commands need neither)."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(f"atlas.{module}"), name)(*args, **kwargs)

    return call


@hookimpl
def feature_atlas_register_models(register: RegisterModels) -> None:
    """Register the torchvision, timm and file model sources."""
    for namespace, module in (
        ("torchvision", "torchvision_source"),
        ("timm", "timm_source"),
        ("file", "file"),
    ):
        source = f"models.sources.{module}"
        register(namespace, ModelSource(load=_lazy(source, "load"), names=_lazy(source, "names")))


@hookimpl
def feature_atlas_register_datasets(register: RegisterDatasets) -> None:
    """Register the folder, segfolder and torchvision data set sources."""
    register("folder", DatasetSource(load=_lazy("datasets.folder", "load")))
    register("segfolder", DatasetSource(load=_lazy("datasets.segfolder", "load")))
    tv = "datasets.torchvision_data"
    register("torchvision", DatasetSource(load=_lazy(tv, "load"), names=_lazy(tv, "names")))
