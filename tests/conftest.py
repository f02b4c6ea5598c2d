"""Shared fixtures: a tiny CNN that builds in milliseconds, a registry that knows it, a
recipe factory, and the session's one build of a recipe that uses every table."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from helpers import EVERY_TABLE, MAPPED, atlas_build, recipe_toml
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


@pytest.fixture
def write_recipe(tmp_path):
    """Return a function writing recipe_toml(base, **tables) to tmp_path/NAME.toml."""

    def write(name: str = "tiny", base: dict | None = None, **tables) -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(recipe_toml(base, **tables) if base else recipe_toml(**tables))
        return path

    return write


@dataclass(frozen=True)
class Built:
    """A finished ``atlas build``: its recipe, site, cache and what the command printed."""

    root: Path
    recipe: Path
    result: subprocess.CompletedProcess

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def cache(self) -> Path:
        return self.root / "cache"


def build_once(tmp_path_factory, name: str, data: dict) -> Built:
    """Build a recipe made from data once, in a folder of its own."""
    root = tmp_path_factory.mktemp(name)
    path = root / f"{name}.toml"
    path.write_text(recipe_toml(data))
    result = atlas_build(path, root)
    assert result.returncode == 0, result.stderr
    return Built(root, path, result)


@pytest.fixture(scope="session")
def every_table(tmp_path_factory) -> Built:
    """The session's one build of EVERY_TABLE (read it; copy its cache to change it)."""
    return build_once(tmp_path_factory, "tiny", EVERY_TABLE)


@pytest.fixture(scope="session")
def mapped(tmp_path_factory) -> Built:
    """The session's one build with an activation atlas (MAPPED)."""
    return build_once(tmp_path_factory, "mapped", MAPPED)
