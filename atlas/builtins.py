"""The core's own plugin: built-in objectives, regularizers, parameterizations and models."""

from __future__ import annotations

import importlib

from . import objectives, params, regularizers
from .datasets import DatasetSource
from .hookspecs import Register, hookimpl
from .sources import ModelSource


@hookimpl
def feature_atlas_register_objectives(register: Register) -> None:
    """Register channel, neuron, layer, direction and diversity objectives."""
    register("channel", objectives.channel)
    register("neuron", objectives.neuron)
    register("layer", objectives.layer)
    register("direction", objectives.direction)
    register("diversity", objectives.diversity)


@hookimpl
def feature_atlas_register_regularizers(register: Register) -> None:
    """Register total variation, L1, L2 and blur penalties."""
    register("tv", regularizers.total_variation)
    register("l1", regularizers.l1)
    register("l2", regularizers.l2)
    register("blur", regularizers.blur)


@hookimpl
def feature_atlas_register_parameterizations(register: Register) -> None:
    """Register the FFT, pixel, MACO and CPPN parameterizations."""
    register("fft", params.FFTImage)
    register("pixel", params.PixelImage)
    register("maco", params.MacoImage)
    register("cppn", params.CPPNImage)


def _lazy(module: str, name: str):
    """Return a function that imports atlas.<module> on first call (torchvision and timm
    take seconds to import, and most commands need neither)."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(f"atlas.{module}"), name)(*args, **kwargs)

    return call


@hookimpl
def feature_atlas_register_models(register: Register) -> None:
    """Register the torchvision, timm and file model sources."""
    for namespace, module in (
        ("torchvision", "torchvision_source"),
        ("timm", "timm_source"),
        ("file", "file"),
    ):
        source = f"sources.{module}"
        register(namespace, ModelSource(load=_lazy(source, "load"), names=_lazy(source, "names")))


@hookimpl
def feature_atlas_register_datasets(register: Register) -> None:
    """Register the folder and torchvision data set sources."""
    register("folder", DatasetSource(load=_lazy("datasets.folder", "load")))
    tv = "datasets.torchvision_data"
    register("torchvision", DatasetSource(load=_lazy(tv, "load"), names=_lazy(tv, "names")))
