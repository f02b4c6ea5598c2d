"""The core's own plugin: built-in objectives, regularizers, parameterizations and models."""

from __future__ import annotations

from . import objectives, params, regularizers
from .hookspecs import Register, hookimpl


@hookimpl
def feature_atlas_register_objectives(register: Register) -> None:
    """Register channel, neuron and layer objectives."""
    register("channel", objectives.channel)
    register("neuron", objectives.neuron)
    register("layer", objectives.layer)


@hookimpl
def feature_atlas_register_regularizers(register: Register) -> None:
    """Register total variation, L1 and L2 penalties."""
    register("tv", regularizers.total_variation)
    register("l1", regularizers.l1)
    register("l2", regularizers.l2)


@hookimpl
def feature_atlas_register_parameterizations(register: Register) -> None:
    """Register the FFT and pixel parameterizations."""
    register("fft", params.fft)
    register("pixel", params.pixel)


@hookimpl
def feature_atlas_register_models(register: Register) -> None:
    """Register the torchvision, timm and file model sources."""
    from .sources import file, timm_source, torchvision_source

    register("torchvision", torchvision_source.SOURCE)
    register("timm", timm_source.SOURCE)
    register("file", file.SOURCE)
