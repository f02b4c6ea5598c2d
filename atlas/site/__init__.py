"""The static site: every page path, the shared picture files, and the writer that renders
pages from a manifest, incrementally. Torch-free: a site can be rendered on a machine
without torch."""

from .files import Source
from .paths import slugify
from .writer import Written, update_site, write_site

__all__ = ["Source", "Written", "slugify", "update_site", "write_site"]
