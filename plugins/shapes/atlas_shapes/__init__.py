"""Demo plugin for feature-atlas: shapes-and-textures data, a small U-Net and its weights."""

from .data import CLASSES

__all__ = ["CLASSES"]
