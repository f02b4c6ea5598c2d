"""Turn what a user wrote (an expression string or objective values) into an Objective.

This is the one way in for recipes, ``atlas.build`` and ``atlas.visualize``: expression
calls are bound to the registered objectives (or regularizers), class labels become
channel indices, masks and direction vectors are read, and every layer is checked
against the model's catalogue, so mistakes are one-line errors before any work starts.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..engine import objectives as obj
from ..engine.masks import resolve_mask
from ..errors import AtlasError, LayerError, PluginError, unknown
from ..models.layers import LayerInfo
from ..recipe.expressions import Call, Expression, ExpressionError, parse_expression
from ..registry import Registry

CHANNEL_ARGS = ("channel", "channels")


@dataclass
class Context:
    """What resolving an objective needs to know about the model and the recipe."""

    model: str
    labels: Mapping[str, Sequence[str]] = field(default_factory=dict)
    layers: Mapping[str, LayerInfo] | None = None  # selectable layers; None: not checked
    base_dir: Path | None = None

    def check_layer(self, name: Any, where: str) -> str:
        """Return name if it is a selectable layer of the model, else raise naming it."""
        if not isinstance(name, str):
            raise ExpressionError(f"{where}: a layer is named by a string, not {name!r}")
        if self.layers is None or name in self.layers or name == obj.INPUT:
            return name
        hint = f"run `atlas layers {self.model}` to list them"
        raise LayerError(f"{where}: " + unknown(f"layer of {self.model}", name, self.layers, hint))

    def channel(self, layer: str, value: Any, where: str) -> int:
        """Return a channel index from an index or a class label of layer."""
        labels = list(self.labels.get(layer, ()))
        if isinstance(value, str):
            if value not in labels:
                hint = (
                    f"layer {layer!r} has labels {', '.join(map(repr, labels[:10]))}"
                    if labels
                    else f"layer {layer!r} has no class labels; use a channel number"
                )
                raise ExpressionError(f"{where}: " + unknown("label", value, labels, hint))
            return labels.index(value)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ExpressionError(f"{where}: a channel is a number or a label, not {value!r}")
        info = self.layers.get(layer) if self.layers else None
        if value < 0 or (info is not None and value >= info.channels):
            count = f"{info.channels} channels" if info else "channels counted from 0"
            raise ExpressionError(
                f"{where}: channel {value} of layer {layer!r} does not exist ({count})"
            )
        return int(value)

    def check_length(self, layer: str | None, vector: np.ndarray, where: str) -> None:
        """Raise unless a direction vector has one value per channel of its layer."""
        info = self.layers.get(layer) if self.layers and layer else None
        if info is not None and vector.size != info.channels:
            raise ExpressionError(
                f"{where}: the vector has {vector.size} values but layer {layer!r} has "
                f"{info.channels} channels; give one value per channel"
            )

    def vector(self, value: Any, where: str) -> np.ndarray:
        """Return a direction vector from a list of numbers or a .npy file."""
        if isinstance(value, str):
            path = (self.base_dir or Path.cwd()) / value
            try:
                return np.load(path, allow_pickle=False).astype(np.float32).reshape(-1)
            except (OSError, ValueError) as exc:
                raise ExpressionError(f"{where}: cannot read vector file {path}: {exc}") from None
        return np.asarray(value, dtype=np.float32).reshape(-1)


def _resolve_arguments(arguments: dict, context: Context, where: str) -> dict:
    """Resolve layer, channel labels, mask and vector arguments of one call."""
    layer = arguments.get("layer")
    if "layer" in arguments:
        layer = arguments["layer"] = context.check_layer(layer, where)
    for key in CHANNEL_ARGS:
        if key in arguments and layer is not None:
            value = arguments[key]
            if isinstance(value, (list, tuple)):
                arguments[key] = [context.channel(layer, v, where) for v in value]
            else:
                arguments[key] = context.channel(layer, value, where)
    if arguments.get("mask") is not None:
        try:
            arguments["mask"] = resolve_mask(arguments["mask"], context.base_dir, where)
        except AtlasError as exc:
            raise ExpressionError(str(exc)) from None
    if isinstance(arguments.get("vector"), (str, list, tuple)):
        arguments["vector"] = context.vector(arguments["vector"], where)
        context.check_length(layer, arguments["vector"], where)
    return arguments


def _bind(factory: Any, call: Call, where: str) -> inspect.BoundArguments:
    """Bind a call's arguments to a factory's signature, naming the call when they misfit."""
    try:
        bound = inspect.signature(factory).bind(*call.args, **dict(call.kwargs))
    except TypeError as exc:
        raise ExpressionError(f"{where}: {call.source or call.name}: {exc}") from None
    except ValueError:  # no signature (a builtin): pass the arguments through
        return None
    return bound


def _compile_call(call: Call, registry: Registry, context: Context, where: str) -> obj.Objective:
    """Build the objective one call of an expression stands for."""
    try:
        is_penalty, factory = registry.term(call.name)
    except PluginError as exc:
        raise ExpressionError(f"{where}: {exc}") from None
    where_call = f"{where}: {call.source or call.name}"
    bound = _bind(factory, call, where)
    if bound is None:
        arguments, args = dict(call.kwargs), list(call.args)
    else:
        arguments, args = dict(bound.arguments), []
    arguments = _resolve_arguments(arguments, context, where_call)
    try:
        made = factory(*args, **arguments)
    except (TypeError, ValueError) as exc:
        raise ExpressionError(f"{where_call}: {exc}") from None
    if is_penalty:
        return obj.Penalty(call.name, made, dict(call.kwargs))
    if not isinstance(made, obj.Objective):
        raise ExpressionError(
            f"{where_call}: objective {call.name!r} returned {type(made).__name__}, not an "
            "Objective; its plugin is broken"
        )
    return made


def compile_expression(
    expression: Expression, registry: Registry, context: Context, where: str
) -> obj.Objective:
    """Turn a parsed expression into one Objective."""
    made = [(w, _compile_call(call, registry, context, where)) for w, call in expression.terms]
    if len(made) == 1 and made[0][0] == 1.0:
        return check_positions(made[0][1], context, where)
    summed = obj.Sum([(w * inner, term) for w, o in made for inner, term in o.terms()])
    return check_positions(summed, context, where)


GRIDLESS = (
    "is a token layer whose patch grid is unknown, so positions and masks cannot address "
    "it (its channels are means over all its tokens); a plugin gives the grid as "
    "ModelAdapter(tokens=TokenGrid(prefix, (h, w)))"
)


def _positional(term: obj.Objective) -> bool:
    """Return True if a term reads positions of its layer: a neuron, a mask, an x and y."""
    placed = getattr(term, "x", None) is not None or getattr(term, "mask", None) is not None
    return isinstance(term, obj.Neuron) or placed


def check_positions(objective: obj.Objective, context: Context, where: str) -> obj.Objective:
    """Raise if a neuron or a mask addresses positions of a token layer with no grid."""
    for _, term in objective.terms():
        for layer in term.layers if _positional(term) else ():
            info = context.layers.get(layer) if context.layers else None
            if info is not None and info.gridless:
                raise ExpressionError(f"{where}: layer {layer!r} {GRIDLESS}")
    return objective


def _resolve_labels(objective: obj.Objective, context: Context, where: str) -> obj.Objective:
    """Resolve labels and check layers of objective values built in Python."""
    for weight, term in objective.terms():
        if weight and isinstance(term, (obj.Channel, obj.Neuron)):
            context.check_layer(term.layer, where)
            if isinstance(term.channels, list):
                term.channels = [context.channel(term.layer, c, where) for c in term.channels]
            else:
                term.channels = context.channel(term.layer, term.channels, where)
        else:
            for layer in term.layers:
                context.check_layer(layer, where)
            if isinstance(term, obj.Direction):
                context.check_length(term.layer, term.vector, where)
    return check_positions(objective, context, where)


def as_objective(
    value: obj.Objective | str,
    registry: Registry,
    context: Context,
    where: str = "objective",
) -> obj.Objective:
    """Return an Objective from an expression string or an objective value."""
    if isinstance(value, str):
        return compile_expression(parse_expression(value, where), registry, context, where)
    if isinstance(value, obj.Objective):
        return _resolve_labels(value, context, where)
    raise AtlasError(
        f"{where}: an objective is an expression string or an Objective, not {type(value).__name__}"
    )
