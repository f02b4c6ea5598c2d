"""What a site's writer wrote and from what, kept in the site so a rebuild writes only the
files whose inputs changed and deletes only files it wrote itself."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

NAME = ".atlas-site.json"


@dataclass
class Record:
    """Each written file (path in the site) and the digest of its inputs, and when the
    site's content last changed."""

    files: dict[str, str] = field(default_factory=dict)
    changed: str | None = None

    @classmethod
    def load(cls, site: Path) -> Record | None:
        """Return the site's record, or None if it has none (or it cannot be read)."""
        try:
            data = json.loads((site / NAME).read_text("utf-8"))
            return cls(dict(data["files"]), data.get("changed"))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def text(self) -> str:
        """Return the record as JSON."""
        return json.dumps({"changed": self.changed, "files": self.files}, sort_keys=True)
