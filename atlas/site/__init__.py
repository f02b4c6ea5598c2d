"""The static site: every page path, and the writer that renders pages from a manifest.
Torch-free: a site can be rendered on a machine without torch."""

from .writer import slugify, write_site

__all__ = ["slugify", "write_site"]
