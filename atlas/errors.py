"""Exceptions a user can act on; the CLI turns them into one-line messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AtlasError(Exception):
    """An error caused by the user's input: exit code 4, one line on stderr."""

    exit_code = 4


class RecipeError(AtlasError):
    """A recipe file that cannot be read or has a bad key or value."""


class PluginError(AtlasError):
    """A plugin that is broken or registers a name another plugin took."""


class ModelError(AtlasError):
    """A model that cannot be found, loaded or run."""


class WeightsError(ModelError):
    """Weights that are neither cached locally nor reachable."""


class LayerError(AtlasError):
    """A layer name or pattern that matches nothing selectable."""


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ' (did you mean: a, b?)' for close matches of name, or ''."""
    matches = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f" (did you mean: {', '.join(matches)}?)" if matches else ""


def unknown(kind: str, name: str, choices: Iterable[str], hint: str = "") -> str:
    """Build the message for an unknown name of some kind, with close matches."""
    choices = sorted(set(choices))
    message = f"unknown {kind} {name!r}{suggest(name, choices)}"
    return f"{message}; {hint}" if hint else message
