"""Shared fixtures: a tiny CNN that builds in milliseconds, and a registry that knows it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from atlas.models.adapter import InputSpec, ModelAdapter
from atlas.plugin import ModelSource, hookimpl
from atlas.registry import load_registry


class TinyCNN(nn.Module):
    """Two conv layers, a pool and a linear classifier; records which modules ran."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 6, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        return self.fc(self.flat(self.pool(x)))


def tiny_adapter(in_channels: int = 3, size: int = 32) -> ModelAdapter:
    """Return a seeded TinyCNN wrapped in an adapter."""
    torch.manual_seed(0)
    spec = InputSpec(
        channels=in_channels,
        size=(size, size),
        mean=(0.5,) * in_channels,
        std=(0.25,) * in_channels,
    )
    return ModelAdapter(
        TinyCNN(in_channels),
        source="test/tiny",
        input=spec,
        weights_digest="tiny-seed-0",
        labels={"fc": ["ant", "bee", "cat", "dog"]},
    )


class TinyPlugin:
    """A throwaway plugin that registers the tiny model as ``test/tiny``."""

    @hookimpl
    def feature_atlas_register_models(self, register):
        def load(name, weights=None, **options):
            return tiny_adapter()

        register("test", ModelSource(load=load, names=lambda: ["tiny"]))


@pytest.fixture
def adapter() -> ModelAdapter:
    return tiny_adapter()


@pytest.fixture
def registry():
    return load_registry(extra=[("tiny", TinyPlugin())])


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Keep every test's cache (and weight digests) out of the user's home."""
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
