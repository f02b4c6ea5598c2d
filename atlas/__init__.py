"""feature-atlas: visualize every channel of a network and publish a static atlas."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = [
    "AtlasMap",
    "Recipe",
    "Visualization",
    "activation_atlas",
    "adapt",
    "build",
    "objective",
    "objectives",
    "visualize",
]

_LAZY = {
    "build": ("atlas.api", "build"),
    "activation_atlas": ("atlas.api", "activation_atlas"),
    "AtlasMap": ("atlas.api", "AtlasMap"),
    "adapt": ("atlas.models.live", "adapt"),
    "visualize": ("atlas.visualization", "visualize"),
    "Visualization": ("atlas.visualization", "Visualization"),
    "objective": ("atlas.engine.objectives", "objective"),
    "objectives": ("atlas.engine.objectives", None),
    "Recipe": ("atlas.recipe", "Recipe"),
}


def __getattr__(name: str):
    """Import the API lazily, so ``import atlas`` stays cheap and has no side effects."""
    if name not in _LAZY:
        raise AttributeError(f"module 'atlas' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attribute is None else getattr(module, attribute)
