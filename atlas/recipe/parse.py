"""Recipes: TOML files naming a model, its layers and the render settings."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import RecipeError, suggest
from .expressions import Expression, parse_expression
from .settings import (
    ACCENT_WEIGHT,
    CONNECTION_METHODS,
    DEFAULT,
    DIVERSITY_WEIGHT,
    LR_SCHEDULES,
    OPTIMIZER_NAMES,
    PRECISION_NAMES,
    TRANSFORM_PRESETS,
    AugmentSettings,
    ConceptSettings,
    ConnectionSettings,
    CropSettings,
    DatasetSpec,
    JudgeSpec,
    MapSettings,
    RenderSettings,
    Transforms,
    TransformSettings,
)

DEMO = "shapes"
BACKENDS = ("loky", "threading", "sequential", "dask")

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
        "pictures": (list,),
        "dataset": (dict,),
        "connections": (dict,),
        "activation_atlas": (dict,),
        "judge": (dict,),
    },
    "judge": {"model": (str,), "weights": (str,), "options": (dict,)},
    "activation_atlas": {
        "layers": (list,),
        "points": (int,),
        "grid": (int,),
        "n_neighbors": (int,),
        "min_dist": (float, int),
        "steps": (int,),
    },
    "connections": {"from": (dict,), "top": (int,), "method": (str,)},
    "dataset": {
        "source": (str,),
        "samples": (int,),
        "top_k": (int,),
        "seed": (int,),
        "options": (dict,),
        "concepts": (bool,),
        "detector_iou": (float, int),
        "detector_selectivity": (float, int),
        "detector_share": (float, int),
    },
    "model": {"source": (str,), "weights": (str,), "options": (dict,)},
    "render": {
        "size": (int, list, tuple),
        "model_size": (int, list, tuple),
        "steps": (int,),
        "lr": (float, int),
        "param": (str,),
        "decorrelate": (bool,),
        "transforms": (bool, dict, str),
        "regularizers": (dict,),
        "objective": (str,),
        "seed": (int,),
        "redirect_relu_steps": (int,),
        "optimizer": (str,),
        "lr_schedule": (str,),
        "alpha": (bool,),
        "seed_image": (str,),
        "accentuate": (bool,),
        "accent_layer": (str,),
        "accent_weight": (float, int),
        "negative": (bool,),
        "diversity": (int,),
        "diversity_weight": (float, int),
    },
    "render.transforms": {
        "pad": (int,),
        "jitter": (int,),
        "scales": (list,),
        "degrees": (float, int),
        "jitter2": (int,),
        "crops": (int,),
        "box": (list,),
        "noise": (float, int),
        "copies": (int,),
        "shift": (float, int),
        "colour": (float, int),
        "decaying_noise": (float, int),
        "zoom": (list,),
        "rotation": (float, int),
    },
    "run": {
        "batch_size": (int,),
        "device": (str,),
        "precision": (str,),
        "backend": (str,),
        "scheduler": (str,),
        "jobs": (int,),
        "max_channels": (int,),
    },
    "output": {"dir": (str,)},
}
# [dataset] keys that decide when a unit is a detector, with their allowed ranges
CONCEPT_THRESHOLDS = {
    "detector_iou": (0.0, 1.0),
    "detector_selectivity": (0.0, 1.0),
    "detector_share": (0.0, 1.0),
}
# Render keys that say what to make for each unit, not how to optimise one picture.
UNIT_KEYS = ("objective", "seed", "negative", "diversity", "diversity_weight")
SCHEMA["pictures"] = {
    "name": (str,),
    **{k: v for k, v in SCHEMA["render"].items() if k not in (*UNIT_KEYS[2:], "accentuate")},
}
CROP_KEYS = ("crops", "box", "noise")
AUGMENT_KEYS = ("copies", "shift", "colour", "decaying_noise", "zoom", "rotation")
# Tables whose keys outside SCHEMA are the parameterization's own options (checked when a
# plan knows the parameterization, against the options it declared when it registered).
OPEN_TABLES = ("render", "pictures")
OPTION_TYPES = (str, int, float, bool, list)


@dataclass
class Picture:
    """One composed picture of a recipe's ``[[pictures]]``: a name and an expression (or,
    from Python, an Objective value in ``value``)."""

    name: str
    expression: Expression | None
    render: RenderSettings
    seed: int = 0
    value: Any = None

    @property
    def text(self) -> str:
        """Return the objective as the site shows it."""
        return self.expression.text if self.expression else repr(self.value)


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
    precision: str = "auto"  # the model's dtype while optimising: auto, fp32 or bf16
    backend: str = "loky"
    scheduler: str | None = None  # a Dask scheduler's address; None: a LocalCluster
    jobs: int = 1
    max_channels: int | None = None
    out_dir: Path | None = None
    path: Path | None = None
    negative: bool = False
    diversity: int = 0
    diversity_weight: float = DIVERSITY_WEIGHT
    pictures: list[Picture] = field(default_factory=list)
    dataset: DatasetSpec | None = None
    connections: ConnectionSettings | None = None
    activation_atlas: MapSettings | None = None
    judge: JudgeSpec | None = None
    origin: str = ""  # where it was read from, for errors: a file, or "atlas.build()"

    @property
    def where(self) -> str:
        """Return how errors name this recipe."""
        return str(self.path) if self.path else self.origin or self.name

    @property
    def base_dir(self) -> Path | None:
        """Return the folder that relative paths in the recipe start from."""
        return self.path.parent if self.path else None


def _check_table(data: dict, table: str, where: str) -> None:
    """Raise on unknown keys or values of the wrong type in one table."""
    allowed = SCHEMA[table]
    for key, value in data.items():
        dotted = f"{table}.{key}" if table else key
        refused = key in SCHEMA["render"] or isinstance(value, dict)  # not an option either
        if key not in allowed and (table not in OPEN_TABLES or refused):
            raise RecipeError(f"{where}: unknown key {dotted!r}{suggest(key, allowed)}")
        types = allowed.get(key, OPTION_TYPES)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join(t.__name__ for t in types)
            raise RecipeError(f"{where}: key {dotted!r} must be {names}, not {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise RecipeError(f"{where}: key {dotted!r} must be a finite number, not {value!r}")


def _size(value: int | list | tuple, where: str, key: str = "size") -> tuple[int, int]:
    """Read a canvas size given as N or [H, W]."""
    size = [value, value] if isinstance(value, int) else list(value)
    if len(size) != 2 or not all(isinstance(v, int) and 8 <= v <= 4096 for v in size):
        raise RecipeError(f"{where}: key 'render.{key}' must be N or [H, W] with 8 <= N <= 4096")
    return int(size[0]), int(size[1])


def _numbers(value: list, n: int, key: str, where: str) -> tuple[float, ...]:
    """Read a list of n finite numbers."""
    ok = len(value) == n and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not ok:
        raise RecipeError(f"{where}: key {key!r} must be a list of {n} numbers")
    return tuple(float(v) for v in value)


def _crops(value: dict, where: str) -> CropSettings:
    """Read MACO's crop augmentation from a transforms table."""
    settings = CropSettings()
    box = _numbers(value["box"], 2, "render.transforms.box", where) if "box" in value else None
    if box and not 0 < box[0] <= box[1] <= 1:
        raise RecipeError(
            f"{where}: key 'render.transforms.box' must be [lo, hi], 0 < lo <= hi <= 1"
        )
    if value.get("crops", 1) < 1 or value.get("noise", 0) < 0:
        raise RecipeError(f"{where}: 'render.transforms.crops' >= 1 and 'noise' >= 0")
    return CropSettings(
        crops=value.get("crops", settings.crops),
        box=box or settings.box,
        noise=float(value.get("noise", settings.noise)),
    )


def _augment(value: dict, where: str) -> AugmentSettings:
    """Read the ViT augmentation from a transforms table: the preset's values, changed."""
    preset = TRANSFORM_PRESETS["vit"]
    zoom = _numbers(value["zoom"], 2, "render.transforms.zoom", where) if "zoom" in value else None
    if zoom and not 0.5 <= zoom[0] <= zoom[1] <= 4:
        raise RecipeError(
            f"{where}: key 'render.transforms.zoom' must be [lo, hi], 0.5 <= lo <= hi <= 4"
        )
    ranges = {
        "copies": (1, 64),
        "shift": (0, 1),
        "colour": (0, 1),
        "decaying_noise": (0, 1),
        "rotation": (0, 180),
    }
    for key, (lo, hi) in ranges.items():
        if key in value and not lo <= value[key] <= hi:
            raise RecipeError(f"{where}: key 'render.transforms.{key}' must be in [{lo}, {hi}]")
    return AugmentSettings(
        copies=value.get("copies", preset.copies),
        jitter=float(value.get("shift", preset.jitter)),
        colour=float(value.get("colour", preset.colour)),
        noise=float(value.get("decaying_noise", preset.noise)),
        zoom=zoom or preset.zoom,
        rotation=float(value.get("rotation", preset.rotation)),
    )


def _transforms(value: bool | dict | str, where: str) -> Transforms:
    """Read ``transforms = true | false | "vit" | {pad = .., ...} | {crops = .., ...} |
    {zoom = .., ...}`` (the last: the ViT preset with some of its settings changed)."""
    if value is False:
        return None
    if value is True:
        return TransformSettings()
    if isinstance(value, str):
        if value not in TRANSFORM_PRESETS:
            raise RecipeError(
                f"{where}: key 'render.transforms' names no preset {value!r}; presets: "
                f"{', '.join(map(repr, TRANSFORM_PRESETS))} (or true, false, a table)"
            )
        return TRANSFORM_PRESETS[value]
    _check_table(value, "render.transforms", where)
    for keys, read in ((CROP_KEYS, _crops), (AUGMENT_KEYS, _augment)):
        if any(k in value for k in keys):
            if not set(value) <= set(keys):
                raise RecipeError(
                    f"{where}: 'render.transforms' takes the standard stack's keys, crop keys "
                    f"({', '.join(CROP_KEYS)}) or the ViT augmentation's "
                    f"({', '.join(AUGMENT_KEYS)}), one kind at a time"
                )
            return read(value, where)
    if "scales" in value:
        value = {
            **value,
            "scales": _numbers(
                value["scales"], len(value["scales"]), "render.transforms.scales", where
            ),
        }
    return TransformSettings(**value)


def param_options(data: dict) -> dict:
    """Return the keys of a render table that are not render settings: the
    parameterization's own options, checked against its declared ones when planning."""
    return {k: v for k, v in data.items() if k not in SCHEMA["render"] and k != "name"}


def check_keywords(keywords: dict, where: str) -> None:
    """Raise naming the first keyword that cannot be a ``[render]`` key: one whose value no
    recipe could hold (the others may be parameterization options, checked when planning)."""
    for key, value in keywords.items():
        if key not in SCHEMA["render"] and not isinstance(value, OPTION_TYPES):
            known = SCHEMA["render"]
            raise RecipeError(f"{where} got an unknown keyword {key!r}{suggest(key, known)}")


def render_settings(data: dict, where: str, table: str = "render") -> RenderSettings:
    """Build render settings from a ``[render]`` table (or keywords of the same names)."""
    _check_table(data, table, where)
    data = {k: v for k, v in data.items() if k not in UNIT_KEYS and k != "name"}
    defaults = RenderSettings()
    if data.get("steps", 1) < 1 or data.get("lr", 1) <= 0:
        raise RecipeError(f"{where}: 'render.steps' and 'render.lr' must be positive")
    if data.get("optimizer", "adam") not in OPTIMIZER_NAMES:
        raise RecipeError(
            f"{where}: key 'render.optimizer' must be one of {', '.join(OPTIMIZER_NAMES)}"
        )
    if data.get("lr_schedule", "constant") not in LR_SCHEDULES:
        raise RecipeError(
            f"{where}: key 'render.lr_schedule' must be one of {', '.join(LR_SCHEDULES)}"
        )
    return RenderSettings(
        size=_size(data["size"], where) if "size" in data else defaults.size,
        model_size=_size(data["model_size"], where, "model_size") if "model_size" in data else None,
        steps=data.get("steps", defaults.steps),
        lr=float(data["lr"]) if "lr" in data else None,
        param=data.get("param", defaults.param),
        param_options=param_options(data),
        decorrelate=data.get("decorrelate", defaults.decorrelate),
        transforms=_transforms(data["transforms"], where) if "transforms" in data else DEFAULT,
        regularizers=_regularizers(data.get("regularizers", {}), where),
        redirect_relu_steps=data.get("redirect_relu_steps", defaults.redirect_relu_steps),
        optimizer=data.get("optimizer"),
        lr_schedule=data.get("lr_schedule", defaults.lr_schedule),
        alpha=data.get("alpha", False),
        **_accent(data, where),
    )


def _accent(data: dict, where: str) -> dict:
    """Read feature accentuation's keys: seed_image, accentuate, accent_layer/_weight."""
    weight = data.get("accent_weight", ACCENT_WEIGHT)
    if not math.isfinite(weight) or weight < 0:
        raise RecipeError(f"{where}: key 'render.accent_weight' must be a number >= 0")
    if data.get("seed_image") and data.get("accentuate"):
        raise RecipeError(
            f"{where}: keys 'render.seed_image' and 'render.accentuate' both choose the image "
            "the pictures start from; keep one"
        )
    if data.get("alpha") and (data.get("seed_image") or data.get("accentuate")):
        raise RecipeError(
            f"{where}: a picture started from an image (seed_image, accentuate) cannot be "
            "transparent; drop 'render.alpha'"
        )
    return {
        "seed_image": data.get("seed_image"),
        "accentuate": data.get("accentuate", False),
        "accent_layer": data.get("accent_layer"),
        "accent_weight": float(weight),
    }


def _regularizers(value: dict, where: str) -> dict[str, float]:
    """Read ``regularizers = {name = weight}``."""
    out = {}
    for name, weight in value.items():
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not math.isfinite(weight)
        ):
            raise RecipeError(f"{where}: key 'render.regularizers.{name}' must be a finite number")
        out[name] = float(weight)
    return out


PARAM_TIED = ("lr", "optimizer", "transforms")  # settings a parameterization has defaults for


def _inherited(render: dict, overrides: dict) -> dict:
    """Return what a picture takes from [render]: all of it but ``accentuate`` (a unit's own
    example: a picture has none), and for a picture with another parameterization none of
    the settings tied to [render]'s (its options, lr, optimizer, transforms), so that it
    starts from its own parameterization's defaults."""
    render = {k: v for k, v in render.items() if k != "accentuate"}  # units only
    if overrides.get("param", render.get("param", "fft")) == render.get("param", "fft"):
        return render
    return {k: v for k, v in render.items() if k in SCHEMA["render"] and k not in PARAM_TIED}


def _pictures(data: dict, where: str, values: dict) -> list[Picture]:
    """Read the recipe's ``[[pictures]]``: each a name, an expression and render overrides
    (values: objectives given as Objective values, by picture name)."""
    pictures, names = [], set()
    render = data.get("render", {})
    for i, table in enumerate(data.get("pictures", [])):
        if not isinstance(table, dict):
            raise RecipeError(f"{where}: 'pictures' must be [[pictures]] tables")
        name = table.get("name")
        label = f"{where}: picture {name!r}" if name else f"{where}: pictures[{i}]"
        _check_table(table, "pictures", label)
        if not name or ("objective" not in table and name not in values):
            raise RecipeError(f"{label}: each [[pictures]] needs a 'name' and an 'objective'")
        if name in names:
            raise RecipeError(f"{label}: two pictures are named {name!r}")
        names.add(name)
        overrides = {k: v for k, v in table.items() if k not in ("name", "objective", "seed")}
        settings = render_settings({**_inherited(render, overrides), **overrides}, label)
        seed = table.get("seed", render.get("seed", 0))
        if name in values:
            pictures.append(Picture(name, None, settings, seed, values[name]))
        else:
            expression = parse_expression(table["objective"], label)
            pictures.append(Picture(name, expression, settings, seed))
    return pictures


def _dataset(data: dict | None, where: str) -> DatasetSpec | None:
    """Read the ``[dataset]`` table."""
    if data is None:
        return None
    _check_table(data, "dataset", where)
    if "source" not in data:
        raise RecipeError(f"{where}: missing key 'dataset.source' (e.g. 'folder:images')")
    for key, low in (("samples", 1), ("top_k", 1)):
        if data.get(key, low) < low:
            raise RecipeError(f"{where}: key 'dataset.{key}' must be at least {low}")
    options = data.get("options", {})
    return DatasetSpec(
        data["source"],
        data.get("samples", 1000),
        data.get("top_k", 9),
        data.get("seed", 0),
        tuple(sorted(options.items())),
        _concepts(data, where),
    )


def _concepts(data: dict, where: str) -> ConceptSettings:
    """Read the ``[dataset]`` keys that say how units are labelled with concepts."""
    keys = ("concepts", *CONCEPT_THRESHOLDS)
    for key, (low, high) in CONCEPT_THRESHOLDS.items():
        if key in data and not low <= data[key] <= high:
            raise RecipeError(f"{where}: key 'dataset.{key}' must be from {low} to {high}")
    defaults = ConceptSettings()
    return ConceptSettings(
        enabled=data.get("concepts", True),
        asked=any(key in data for key in keys) and data.get("concepts", True),
        iou=float(data.get("detector_iou", defaults.iou)),
        selectivity=float(data.get("detector_selectivity", defaults.selectivity)),
        share=float(data.get("detector_share", defaults.share)),
    )


def _connections(data: dict | None, where: str) -> ConnectionSettings | None:
    """Read the ``[connections]`` table (its layer names are checked when planning)."""
    if data is None:
        return None
    _check_table(data, "connections", where)
    method = data.get("method", "data")
    if method not in CONNECTION_METHODS:
        raise RecipeError(
            f"{where}: key 'connections.method' must be one of {', '.join(CONNECTION_METHODS)}"
        )
    if data.get("top", 1) < 1:
        raise RecipeError(f"{where}: key 'connections.top' must be at least 1")
    sources = data.get("from", {})
    if not all(isinstance(v, str) for v in sources.values()):
        raise RecipeError(
            f"{where}: key 'connections.from' maps layers to layers, as in from = {{mid = 'enc2'}}"
        )
    return ConnectionSettings(tuple(sorted(sources.items())), data.get("top", 8), method)


def _judge(data: dict | None, where: str) -> JudgeSpec | None:
    """Read the ``[judge]`` table: another model that judges the class pictures."""
    if data is None:
        return None
    _check_table(data, "judge", where)
    if "model" not in data:
        raise RecipeError(f"{where}: [judge] needs key 'model', e.g. model = 'shapes/judge'")
    options = tuple(sorted(data.get("options", {}).items()))
    return JudgeSpec(data["model"], data.get("weights"), options)


MAP_LIMITS = {  # [activation_atlas] keys: (least, most)
    "points": (100, 1_000_000),
    "grid": (2, 160),
    "n_neighbors": (2, 200),
    "min_dist": (0.0, 1.0),
    "steps": (1, 100_000),
}


def _activation_atlas(data: dict | None, where: str, seed: int) -> MapSettings | None:
    """Read the ``[activation_atlas]`` table (its layer names are checked when planning)."""
    if data is None:
        return None
    _check_table(data, "activation_atlas", where)
    layers = data.get("layers")
    if not layers or not all(isinstance(x, str) for x in layers):
        raise RecipeError(
            f"{where}: key 'activation_atlas.layers' must be a non-empty list of layer names"
        )
    for key, (least, most) in MAP_LIMITS.items():
        if key in data and not least <= data[key] <= most:
            raise RecipeError(
                f"{where}: key 'activation_atlas.{key}' must be from {least} to {most}"
            )
    keys = {k: data[k] for k in MAP_LIMITS if k in data}
    if "min_dist" in keys:
        keys["min_dist"] = float(keys["min_dist"])
    return MapSettings(tuple(dict.fromkeys(layers)), seed=seed, **keys)


def unit_settings(render: dict, where: str) -> dict:
    """Read the render keys that say what to make for each unit (objective, seed, ...)."""
    if render.get("diversity", 0) not in (0, *range(2, 65)):
        raise RecipeError(f"{where}: key 'render.diversity' must be 0 (off) or 2 to 64 pictures")
    return {
        "objective": render.get("objective", "channel"),
        "seed": render.get("seed", 0),
        "negative": render.get("negative", False),
        "diversity": render.get("diversity", 0),
        "diversity_weight": float(render.get("diversity_weight", DIVERSITY_WEIGHT)),
    }


def parse_recipe(
    data: dict,
    where: str,
    name: str = "atlas",
    base_dir: Path | None = None,
    objectives: dict | None = None,
) -> Recipe:
    """Validate TOML data into a Recipe; where names the file in errors. ``objectives``:
    objectives of ``[[pictures]]`` given as values (from Python), by picture name."""
    _check_table(data, "", where)
    for table in ("model", "run", "output"):
        _check_table(data.get(table, {}), table, where)
    model = data.get("model", {})
    if "source" not in model:
        raise RecipeError(f"{where}: missing key 'model.source' (e.g. 'torchvision/resnet18')")
    layers = data.get("layers", [] if "activation_atlas" in data else None)
    mapped_only = layers == [] and "activation_atlas" in data  # a map and no unit pictures
    if not (layers or mapped_only) or not all(isinstance(x, str) for x in layers):
        raise RecipeError(f"{where}: key 'layers' must be a non-empty list of layer names")
    render, run = data.get("render", {}), data.get("run", {})
    for key in ("batch_size", "jobs", "max_channels"):
        if run.get(key, 1) < 1:
            raise RecipeError(f"{where}: key 'run.{key}' must be at least 1")
    if run.get("precision", "auto") not in PRECISION_NAMES:
        raise RecipeError(
            f"{where}: key 'run.precision' must be one of {', '.join(PRECISION_NAMES)}"
        )
    if run.get("backend", "loky") not in BACKENDS:
        raise RecipeError(f"{where}: key 'run.backend' must be one of {', '.join(BACKENDS)}")
    out_dir = data.get("output", {}).get("dir")
    if "activation_atlas" in data and "dataset" not in data:
        raise RecipeError(
            f"{where}: [activation_atlas] needs a [dataset] table: the activations it maps "
            "are read from the data set's images"
        )
    if render.get("accentuate") and "dataset" not in data:
        raise RecipeError(
            f"{where}: key 'render.accentuate' needs a [dataset] table: each unit's picture "
            "starts from its top example in the data set"
        )
    return Recipe(
        model=model["source"],
        layers=list(layers),
        name=name,
        title=data.get("title", name),
        description=data.get("description", ""),
        weights=model.get("weights"),
        model_options=model.get("options", {}),
        render=render_settings(render, where),
        pictures=_pictures(data, where, objectives or {}),
        dataset=_dataset(data.get("dataset"), where),
        connections=_connections(data.get("connections"), where),
        judge=_judge(data.get("judge"), where),
        activation_atlas=_activation_atlas(
            data.get("activation_atlas"), where, render.get("seed", 0)
        ),
        **unit_settings(render, where),
        batch_size=run.get("batch_size", 64),
        device=run.get("device", "auto"),
        precision=run.get("precision", "auto"),
        backend=run.get("backend", "dask" if "scheduler" in run else "loky"),
        scheduler=run.get("scheduler"),
        jobs=run.get("jobs", 1),
        max_channels=run.get("max_channels"),
        out_dir=Path(out_dir) if out_dir else None,
        origin=where,
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
    recipe = parse_recipe(_loads(text, str(path)), str(path), path.stem, path.parent)
    recipe.path = path
    return recipe


def _loads(text: str, where: str) -> dict:
    """Parse TOML text, naming the file and position on error."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{where}: not valid TOML: {exc}") from None
