"""feature-atlas: visualize every channel of a network and publish a static atlas."""

from __future__ import annotations

__version__ = "0.1.0"
