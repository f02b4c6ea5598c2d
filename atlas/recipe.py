"""Recipes: TOML files naming a model, its layers and the render settings."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import RecipeError, suggest
from .render import RenderSettings
from .transforms import TransformSettings

DEMO = "shapes"
BACKENDS = ("loky", "threading", "sequential")

# Allowed keys per table, with the Python types each accepts.
SCHEMA: dict[str, dict[str, tuple[type, ...]]] = {
    "": {
        "title": (str,),
        "description": (str,),
        "layers": (list,),
        "model": (dict,),
        "render": (dict,),
        "run": (dict,),
        "output": (dict,),
    },
    "model": {"source": (str,), "weights": (str,), "options": (dict,)},
    "render": {
        "size": (int, list),
        "steps": (int,),
        "lr": (float, int),
        "param": (str,),
        "decay": (float, int),
        "decorrelate": (bool,),
        "transforms": (bool, dict),
        "regularizers": (dict,),
        "objective": (str,),
        "seed": (int,),
        "redirect_relu_steps": (int,),
    },
    "render.transforms": {
        "pad": (int,),
        "jitter": (int,),
        "scales": (list,),
        "degrees": (float, int),
        "jitter2": (int,),
    },
    "run": {
        "batch_size": (int,),
        "device": (str,),
        "backend": (str,),
        "jobs": (int,),
        "max_channels": (int,),
    },
    "output": {"dir": (str,)},
}


@dataclass
class Recipe:
    """A validated recipe; ``path`` is where it was read from (None when built in code)."""

    model: str
    layers: list[str]
    name: str = "atlas"
    title: str = ""
    description: str = ""
    weights: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    objective: str = "channel"
    seed: int = 0
    render: RenderSettings = field(default_factory=RenderSettings)
    batch_size: int = 64
    device: str = "auto"
    backend: str = "loky"
    jobs: int = 1
    max_channels: int | None = None
    out_dir: Path | None = None
    path: Path | None = None


def _check_table(data: dict, table: str, where: str) -> None:
    """Raise on unknown keys or values of the wrong type in one table."""
    allowed = SCHEMA[table]
    for key, value in data.items():
        dotted = f"{table}.{key}" if table else key
        if key not in allowed:
            raise RecipeError(f"{where}: unknown key {dotted!r}{suggest(key, allowed)}")
        types = allowed[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join(t.__name__ for t in types)
            raise RecipeError(f"{where}: key {dotted!r} must be {names}, not {value!r}")


def _size(value: int | list, where: str) -> tuple[int, int]:
    """Read a canvas size given as N or [H, W]."""
    size = [value, value] if isinstance(value, int) else value
    if len(size) != 2 or not all(isinstance(v, int) and 8 <= v <= 4096 for v in size):
        raise RecipeError(f"{where}: key 'render.size' must be N or [H, W] with 8 <= N <= 4096")
    return int(size[0]), int(size[1])


def _transforms(value: bool | dict, where: str) -> TransformSettings | None:
    """Read ``transforms = true | false | {pad = .., ...}``."""
    if value is False:
        return None
    if value is True:
        return TransformSettings()
    _check_table(value, "render.transforms", where)
    if "scales" in value:
        value = {**value, "scales": tuple(float(s) for s in value["scales"])}
    return TransformSettings(**value)


def _render(data: dict, where: str) -> RenderSettings:
    """Build render settings from the ``[render]`` table."""
    _check_table(data, "render", where)
    defaults = RenderSettings()
    if data.get("steps", 1) < 1 or data.get("lr", 1) <= 0:
        raise RecipeError(f"{where}: 'render.steps' and 'render.lr' must be positive")
    if "decay" in data and data.get("param", "fft") != "fft":
        raise RecipeError(f"{where}: key 'render.decay' applies to param = 'fft' only")
    return RenderSettings(
        size=_size(data["size"], where) if "size" in data else defaults.size,
        steps=data.get("steps", defaults.steps),
        lr=float(data.get("lr", defaults.lr)),
        param=data.get("param", defaults.param),
        param_options={"decay": float(data["decay"])} if "decay" in data else {},
        decorrelate=data.get("decorrelate", defaults.decorrelate),
        transforms=_transforms(data.get("transforms", True), where),
        regularizers={k: float(v) for k, v in data.get("regularizers", {}).items()},
        redirect_relu_steps=data.get("redirect_relu_steps", defaults.redirect_relu_steps),
    )


def parse_recipe(data: dict, where: str, name: str = "atlas") -> Recipe:
    """Validate TOML data into a Recipe; where names the file in errors."""
    _check_table(data, "", where)
    for table in ("model", "run", "output"):
        _check_table(data.get(table, {}), table, where)
    model = data.get("model", {})
    if "source" not in model:
        raise RecipeError(f"{where}: missing key 'model.source' (e.g. 'torchvision/resnet18')")
    layers = data.get("layers")
    if not layers or not all(isinstance(x, str) for x in layers):
        raise RecipeError(f"{where}: key 'layers' must be a non-empty list of layer names")
    render, run = data.get("render", {}), data.get("run", {})
    for key in ("batch_size", "jobs", "max_channels"):
        if run.get(key, 1) < 1:
            raise RecipeError(f"{where}: key 'run.{key}' must be at least 1")
    if run.get("backend", "loky") not in BACKENDS:
        raise RecipeError(f"{where}: key 'run.backend' must be one of {', '.join(BACKENDS)}")
    out_dir = data.get("output", {}).get("dir")
    return Recipe(
        model=model["source"],
        layers=list(layers),
        name=name,
        title=data.get("title", name),
        description=data.get("description", ""),
        weights=model.get("weights"),
        model_options=model.get("options", {}),
        objective=render.get("objective", "channel"),
        seed=render.get("seed", 0),
        render=_render({k: v for k, v in render.items() if k not in ("objective", "seed")}, where),
        batch_size=run.get("batch_size", 64),
        device=run.get("device", "auto"),
        backend=run.get("backend", "loky"),
        jobs=run.get("jobs", 1),
        max_channels=run.get("max_channels"),
        out_dir=Path(out_dir) if out_dir else None,
    )


def load_recipe(path: str | Path | None = None) -> Recipe:
    """Read a recipe file, or the embedded demo recipe when path is None."""
    if path is None:
        text = resources.files("atlas.atlases").joinpath(f"{DEMO}.toml").read_text("utf-8")
        return parse_recipe(_loads(text, f"<embedded {DEMO}.toml>"), f"{DEMO}.toml", DEMO)
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc.strerror}") from None
    recipe = parse_recipe(_loads(text, str(path)), str(path), path.stem)
    recipe.path = path
    return recipe


def _loads(text: str, where: str) -> dict:
    """Parse TOML text, naming the file and position on error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{where}: not valid TOML: {exc}") from None
