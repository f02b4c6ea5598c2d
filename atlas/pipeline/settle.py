"""Settle render settings against the model and the registry before any work: the canvas
size, the parameterization's defaults, and its own options, checked as it declared them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..contracts import Option, Parameterization
from ..errors import AtlasError, RecipeError, suggest
from ..images import read_image
from ..models.adapter import ModelAdapter
from ..models.weights import file_digest
from ..recipe import SCHEMA, CropSettings, FileRef, RenderSettings, TransformSettings
from ..recipe.settings import DEFAULT, Transforms
from ..registry import Registry


def _transforms(value: bool | str) -> Transforms:
    """Map a parameterization's default transforms (True, False, "crops") to settings."""
    if value is True:
        return TransformSettings()
    if value == "crops":
        return CropSettings()
    return None


def _owner(registry: Registry, key: str) -> str | None:
    """Return a parameterization that declares option key, if any does."""
    return next(
        (
            n
            for n in registry.names("parameterizations")
            if registry.parameterization(n).option(key)
        ),
        None,
    )


def _option_value(option: Option, value: object, key: str, base_dir: Path | None) -> object:
    """Check one option's value against its declaration; files become FileRefs."""
    if option.file and isinstance(value, FileRef):  # settled already
        return value
    kind = option.type
    fits = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, fits = float(value), True
    if not fits:
        raise RecipeError(f"key {key!r} must be {kind.__name__}, not {value!r}")
    if not option.file:
        return value
    path = ((base_dir or Path.cwd()) / value).resolve()
    if not path.is_file():
        hint = f"; {option.help}" if option.help else ""
        raise RecipeError(f"key {key!r}: file {path} does not exist{hint}")
    return FileRef(str(path), file_digest(path))


def _options(
    settings: RenderSettings,
    registry: Registry,
    param: Parameterization,
    adapter: ModelAdapter,
    base_dir: Path | None,
    where: str,
) -> dict:
    """Check the parameterization options a recipe set; return them ready for the spec."""
    checked = {}
    keywords = where.endswith("()")  # a Python caller's keywords, not a recipe's keys
    for name, value in settings.param_options.items():
        key = name if keywords else f"render.{name}"
        option = param.option(name)
        if option is None:
            owner = _owner(registry, name)
            if owner:
                raise RecipeError(
                    f"key {key!r} is an option of param {owner!r}, not of {settings.param!r}"
                )
            known = [*SCHEMA["render"], *(o.name for o in param.options)]
            unknown = f"got an unknown keyword {key!r}" if keywords else f"unknown key {key!r}"
            raise RecipeError(f"{unknown}{suggest(name, known)}")
        checked[name] = _option_value(option, value, key, base_dir)
        if option.check is not None:
            target = checked[name].path if isinstance(checked[name], FileRef) else checked[name]
            try:
                option.check(target, adapter.input)
            except (ValueError, OSError) as exc:
                raise RecipeError(f"key {key!r}: {exc}") from None
    for option in param.options:  # keyed options enter every key, defaults included
        if option.keyed and option.name not in checked:
            checked[option.name] = option.default
    return checked


def settle(
    settings: RenderSettings,
    adapter: ModelAdapter,
    registry: Registry,
    where: str,
    base_dir: Path | None = None,
) -> RenderSettings:
    """Fill what a recipe left open (the canvas size, the parameterization's lr, optimizer
    and transforms) and check the parameterization's options; errors name where."""
    try:
        param = registry.parameterization(settings.param)
        if settings.alpha and not param.alpha:
            able = [
                n for n in registry.names("parameterizations") if registry.parameterization(n).alpha
            ]
            raise RecipeError(
                f"parameterization {settings.param!r} cannot make transparent pictures; use "
                f"param = {' or '.join(map(repr, able))} with alpha = true"
            )
        options = _options(settings, registry, param, adapter, base_dir, where)
        seed_image = _seed_image(settings, registry, param, base_dir, where.endswith("()"))
    except AtlasError as exc:
        joint = " " if str(exc).startswith("got ") else ": "
        raise type(exc)(f"{where}{joint}{exc}" if where else str(exc)) from None
    return replace(
        settings,
        size=settings.size or tuple(adapter.input.size),
        lr=float(settings.lr if settings.lr is not None else param.lr),
        optimizer=settings.optimizer or param.optimizer,
        transforms=(
            _transforms(param.transforms) if settings.transforms == DEFAULT else settings.transforms
        ),
        param_options=options,
        seed_image=seed_image,
    )


def _seed_image(
    settings: RenderSettings, registry: Registry, param: Parameterization, base_dir, keywords
) -> FileRef | None:
    """Check that the parameterization can start from an image and that the seed file is
    one; return it as a FileRef (known by its content)."""
    key = "seed_image" if keywords else "render.seed_image"
    if settings.seeded and not param.seedable:
        able = [
            n for n in registry.names("parameterizations") if registry.parameterization(n).seedable
        ]
        asked = key if settings.seed_image is not None else key.replace("seed_image", "accentuate")
        raise RecipeError(
            f"key {asked!r}: parameterization {settings.param!r} cannot start from an image; "
            f"use param = {' or '.join(map(repr, able))}"
        )
    value = settings.seed_image
    if value is None or isinstance(value, FileRef):
        return value
    path = ((base_dir or Path.cwd()) / value).resolve()
    if not path.is_file():
        raise RecipeError(f"key {key!r}: file {path} does not exist")
    try:
        read_image(path)
    except ValueError as exc:
        raise RecipeError(f"key {key!r}: {exc}") from None
    return FileRef(str(path), file_digest(path))
