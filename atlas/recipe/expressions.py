"""The objective expression language: parsed with ``ast``, never evaluated as Python.

An expression is a linear combination of calls of registered objectives, e.g.
``channel('output', 'circle') - 0.5 * channel('output', 'square', mask='left')``.
Parsing turns it into plain data (a list of weighted calls with literal arguments); which
names exist and what the arguments mean is decided later, against the plugin registry.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

from ..errors import RecipeError

MAX_LENGTH = 20_000


class ExpressionError(RecipeError):
    """An objective expression that is not valid or uses something the language refuses."""


@dataclass(frozen=True)
class Call:
    """One call of a registered objective (or regularizer) with literal arguments."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    source: str = field(default="", compare=False)

    def as_dict(self) -> dict:
        """Return plain data."""
        return {"name": self.name, "args": list(self.args), "kwargs": dict(self.kwargs)}


@dataclass(frozen=True)
class Expression:
    """A weighted sum of calls: what an expression string means, as plain data."""

    terms: tuple[tuple[float, Call], ...]
    text: str = field(default="", compare=False)

    def as_dict(self) -> dict:
        """Return plain data."""
        return {"terms": [{"weight": w, "call": c.as_dict()} for w, c in self.terms]}


def _segment(text: str, node: ast.AST) -> str:
    """Return the source text of node, shortened for an error message."""
    part = ast.get_source_segment(text, node) or type(node).__name__
    part = " ".join(part.split())
    return part if len(part) <= 60 else part[:57] + "..."


class _Parser:
    """Walk an expression's syntax tree, accepting only the language's few forms."""

    def __init__(self, text: str, where: str):
        self.text, self.where = text, where

    def refuse(self, node: ast.AST, why: str) -> ExpressionError:
        return ExpressionError(f"{self.where}: {why}: {_segment(self.text, node)!r}")

    def number(self, node: ast.AST) -> float | None:
        """Return node's value if it is a (possibly negated) number literal."""
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = self.number(node.operand)
            if inner is None:
                return None
            return -inner if isinstance(node.op, ast.USub) else inner
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, Real)
            and not isinstance(node.value, bool)
        ):
            return float(node.value)
        return None

    def terms(self, node: ast.AST) -> list[tuple[float, Call]]:
        """Return the weighted calls that node stands for."""
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            return [(sign * w, c) for w, c in self.terms(node.operand)]
        if isinstance(node, ast.Call):
            return [(1.0, self.call(node))]
        if self.number(node) is not None:
            raise self.refuse(node, "a number alone is not an objective; multiply an objective")
        raise self.refuse(node, self.what(node))

    def binop(self, node: ast.BinOp) -> list[tuple[float, Call]]:
        if isinstance(node.op, (ast.Add, ast.Sub)):
            sign = 1.0 if isinstance(node.op, ast.Add) else -1.0
            return self.terms(node.left) + [(sign * w, c) for w, c in self.terms(node.right)]
        if isinstance(node.op, ast.Mult):
            left, right = self.number(node.left), self.number(node.right)
            if left is not None and right is not None:
                raise self.refuse(node, "a product of two numbers is not an objective")
            if left is None and right is None:
                raise self.refuse(node, "objectives can only be multiplied by a number")
            weight = left if left is not None else right
            other = node.right if left is not None else node.left
            return [(weight * w, c) for w, c in self.terms(other)]
        if isinstance(node.op, ast.Div):
            divisor = self.number(node.right)
            if divisor is None:
                raise self.refuse(node, "objectives can only be divided by a number")
            if divisor == 0:
                raise self.refuse(node, "division by zero")
            return [(w / divisor, c) for w, c in self.terms(node.left)]
        raise self.refuse(node, f"operator {type(node.op).__name__} is not allowed")

    def call(self, node: ast.Call) -> Call:
        if not isinstance(node.func, ast.Name):
            raise self.refuse(node.func, "only objectives called by name are allowed, not")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.refuse(node, "*arguments are not allowed")
        kwargs = []
        for keyword in node.keywords:
            if keyword.arg is None:
                raise self.refuse(node, "**arguments are not allowed")
            kwargs.append((keyword.arg, self.literal(keyword.value)))
        args = tuple(self.literal(a) for a in node.args)
        return Call(node.func.id, args, tuple(kwargs), _segment(self.text, node))

    def literal(self, node: ast.AST) -> Any:
        """Return the value of a number, string, boolean or list-of-literals argument."""
        number = self.number(node)
        if number is not None:
            value = node.value if isinstance(node, ast.Constant) else number
            return int(value) if isinstance(value, int) else float(value)
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bool)):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.literal(item) for item in node.elts]
        raise self.refuse(node, "arguments must be numbers, strings or lists, not")

    @staticmethod
    def what(node: ast.AST) -> str:
        kinds = {
            ast.Name: "bare names are not allowed",
            ast.Attribute: "attribute access is not allowed",
            ast.Subscript: "subscripts are not allowed",
            ast.Lambda: "lambdas are not allowed",
            ast.Constant: "a literal alone is not an objective",
        }
        return kinds.get(type(node), f"{type(node).__name__} is not allowed")


def parse_expression(text: str, where: str = "objective") -> Expression:
    """Parse an objective expression into weighted calls; raise ExpressionError on anything
    outside the language. Nothing in text is ever executed."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"{where}: the objective expression is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"{where}: the objective expression is over {MAX_LENGTH} characters")
    source = f"({text.strip()}\n)"  # parentheses let an expression span lines
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"{where}: not a valid expression: {exc.msg}") from None
    terms = _Parser(source, where).terms(tree.body)
    return Expression(tuple(terms), text)
