"""feature-atlas: visualize every channel of a network and publish a static atlas."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["build"]


def __getattr__(name: str):
    """Import the API lazily, so ``import atlas`` stays cheap and has no side effects."""
    if name == "build":
        from .api import build

        return build
    raise AttributeError(f"module 'atlas' has no attribute {name!r}")
