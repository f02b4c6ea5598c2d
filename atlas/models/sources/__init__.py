"""Model sources: namespaces such as ``torchvision/NAME`` that load a model adapter."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from ...errors import ModelError, unknown
from ..adapter import ModelAdapter

# model.options keys that override the adapter's input spec, whatever the source.
INPUT_KEYS = {
    "input_size": "size",
    "channels": "channels",
    "mean": "mean",
    "std": "std",
    "value_range": "value_range",
    "fixed_size": "fixed_size",
}


def parse(source: str) -> tuple[str, str]:
    """Split ``ns/name`` or ``file:path`` into (namespace, name)."""
    if ":" in source.split("/", 1)[0]:
        namespace, name = source.split(":", 1)
    elif "/" in source:
        namespace, name = source.split("/", 1)
    else:
        raise ModelError(
            f"model {source!r} needs a namespace, as in 'torchvision/resnet50', "
            "'timm/convnext_tiny' or 'file:path/to/model.pt'"
        )
    return namespace, name


def unknown_name(namespace: str, name: str, choices: Iterable[str]) -> ModelError:
    """Build the error for a name the namespace does not have."""
    hint = f"run `atlas layers {namespace}/NAME` with one of the names it lists"
    return ModelError(unknown(f"{namespace} model", name, choices, hint))


def with_input(adapter: ModelAdapter, overrides: dict) -> ModelAdapter:
    """Apply recipe overrides of the input spec and labels to an adapter."""
    fields = {INPUT_KEYS[k]: v for k, v in overrides.items() if k in INPUT_KEYS}
    if "size" in fields:
        size = fields["size"]
        fields["size"] = (size, size) if isinstance(size, int) else tuple(size)
    for key in ("mean", "std", "value_range"):
        if key in fields:
            fields[key] = tuple(float(v) for v in fields[key])
    channels = fields.get("channels", adapter.input.channels)
    for key in ("mean", "std"):
        if len(fields.get(key, getattr(adapter.input, key))) != channels:
            raise ModelError(f"model.options.{key} of {adapter.source} needs {channels} values")
    adapter.input = replace(adapter.input, **fields)
    if "labels" in overrides:
        adapter.labels = {**adapter.labels, "output": list(overrides["labels"])}
    return adapter
