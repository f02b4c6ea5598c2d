"""The settings a recipe decides, as plain frozen data: no torch, so recipes and sites
can be read on a machine without it. The engine reads these; cache keys are made of them."""

from __future__ import annotations

from dataclasses import dataclass, field

# Bump when a change to the optimiser changes the pictures: it is part of every cache key.
ENGINE_VERSION = "2"
DEFAULT = "default"  # a setting left to the parameterization's defaults
PRECISION_NAMES = ("auto", "fp32", "bf16")
OPTIMIZER_NAMES = ("adam", "nadam")
LR_SCHEDULES = ("constant", "cosine")  # cosine: from lr down to 0 over the steps
DIVERSITY_WEIGHT = 1.0  # lucid uses 100 on ImageNet nets; scale it to your objective
ACCENT_WEIGHT = 0.3  # feature accentuation's alpha: the L2 term's weight, scale-free


def _default_scales() -> tuple[float, ...]:
    return tuple(round(0.9 + 0.02 * i, 2) for i in range(11))


@dataclass(frozen=True)
class TransformSettings:
    """lucid's standard stack: pad 12, jitter 8, scale 0.9-1.1, rotate ±10°, jitter 4."""

    pad: int = 12
    jitter: int = 8
    scales: tuple[float, ...] = field(default_factory=_default_scales)
    degrees: float = 10.0
    jitter2: int = 4

    def as_dict(self) -> dict:
        """Return plain data for cache keys."""
        return {
            "pad": self.pad,
            "jitter": self.jitter,
            "scales": list(self.scales),
            "degrees": self.degrees,
            "jitter2": self.jitter2,
        }


NO_TRANSFORMS = TransformSettings(pad=0, jitter=0, scales=(1.0,), degrees=0.0, jitter2=0)


@dataclass(frozen=True)
class CropSettings:
    """MACO's augmentation: several random crops of the canvas per step, plus noise.

    Each crop's side is a fraction of the canvas drawn from ``box``; its centre is drawn
    around the middle (sd 0.15) and kept inside the canvas; crops are resampled to the
    model's input size; ``noise`` is the scale of the normal and uniform noise added.
    """

    crops: int = 6
    box: tuple[float, float] = (0.5, 1.0)
    noise: float = 0.05

    def as_dict(self) -> dict:
        """Return plain data for cache keys."""
        return {"crops": self.crops, "box": list(self.box), "noise": self.noise}


@dataclass(frozen=True)
class AugmentSettings:
    """Ghiasi et al.'s augmentation for vision transformers (2022, "What do vision
    transformers learn?"): several augmented copies of the canvas a step, each shifted by up
    to ``jitter`` of its side (±32 px at 224), its colours shifted (each channel scaled by
    1 ± ``colour`` and offset by ± ``colour``), and noise whose scale falls from ``noise``
    at the first step to 0 at the last. ``transforms = "vit"`` in a recipe.

    Not in Ghiasi's recipe, off in the preset: each copy zoomed by a factor drawn from
    ``zoom`` (over 1: in) and turned by up to ±``rotation`` degrees (``transforms = {zoom =
    [1, 1.5], rotation = 15}``: the preset plus these).
    """

    copies: int = 8
    jitter: float = 0.14
    colour: float = 0.1
    noise: float = 0.05  # at 0.2 the demo's circle reached a fifth of what 0.05 reaches
    zoom: tuple[float, float] = (1.0, 1.0)
    rotation: float = 0.0

    @property
    def reshapes(self) -> bool:
        """Whether the copies are zoomed or turned (the preset's are only shifted)."""
        return self.zoom != (1.0, 1.0) or self.rotation != 0.0

    def as_dict(self) -> dict:
        """Return plain data for cache keys (the expanded settings, never the name); zoom
        and rotation only when used, so the preset's keys stay as they were."""
        keyed = {
            "copies": self.copies,
            "shift": self.jitter,
            "colour": self.colour,
            "decaying_noise": self.noise,
        }
        if self.reshapes:
            keyed.update(zoom=list(self.zoom), rotation=self.rotation)
        return keyed


TRANSFORM_PRESETS = {"vit": AugmentSettings()}

Transforms = TransformSettings | CropSettings | AugmentSettings | None


@dataclass(frozen=True)
class FileRef:
    """A file a setting names, known by its content: the digest enters cache keys, not the
    path, so moving the file recomputes nothing."""

    path: str
    sha256: str

    def identity(self) -> dict:
        """Return the plain data that stands for the file in a cache key."""
        return {"sha256": self.sha256}


@dataclass(frozen=True)
class RenderSettings:
    """Everything besides the objective and seed that decides the picture.

    ``lr``, ``optimizer`` and ``transforms`` left as None / DEFAULT take the
    parameterization's own defaults when a plan settles them. ``param_options`` holds only
    the options a recipe set (so cache keys stay as they were); files as FileRef once settled.
    """

    size: tuple[int, int] | None = None  # None: the model's own input size
    model_size: tuple[int, int] | None = None  # resize each view to this first (lucent's 224)
    steps: int = 256
    lr: float | None = None
    param: str = "fft"
    param_options: dict = field(default_factory=dict)
    decorrelate: bool = True
    transforms: Transforms | str = DEFAULT
    regularizers: dict[str, float] = field(default_factory=dict)
    redirect_relu_steps: int = 16
    optimizer: str | None = None
    alpha: bool = False
    lr_schedule: str = "constant"
    seed_image: FileRef | str | None = None  # start from this image (feature accentuation)
    accentuate: bool = False  # start each unit from its own top dataset example
    accent_layer: str | None = None  # None: halfway to the objective's layer, when planned
    accent_weight: float = ACCENT_WEIGHT

    @property
    def seeded(self) -> bool:
        """Return True if the pictures start from real images (feature accentuation)."""
        return self.seed_image is not None or self.accentuate

    @property
    def settled(self) -> bool:
        """Return True once every setting left to the parameterization has a value."""
        return self.lr is not None and self.optimizer is not None and self.transforms != DEFAULT

    def as_dict(self) -> dict:
        """Return canonical plain data for cache keys."""
        transforms = self.transforms
        return {
            "size": list(self.size) if self.size else None,
            "steps": self.steps,
            "lr": self.lr,
            "optimizer": self.optimizer,
            "param": self.param,
            "param_options": options_identity(self.param_options),
            "decorrelate": self.decorrelate,
            "transforms": transforms.as_dict() if hasattr(transforms, "as_dict") else transforms,
            "regularizers": dict(sorted(self.regularizers.items())),
            "redirect_relu_steps": self.redirect_relu_steps,
            "alpha": self.alpha,
            "engine": ENGINE_VERSION,
            **({"model_size": list(self.model_size)} if self.model_size else {}),
            **({"lr_schedule": self.lr_schedule} if self.lr_schedule != "constant" else {}),
            **(self._accent() if self.seeded else {}),
        }

    def _accent(self) -> dict:
        """Return feature accentuation's part of the key: the seed file's content (a unit's
        own example is in its task's key), the L2 term's layer and weight."""
        seed = self.seed_image
        return {
            "seed_image": seed.identity() if isinstance(seed, FileRef) else seed,
            "accent": {"layer": self.accent_layer, "weight": self.accent_weight},
        }


def options_identity(options: dict) -> dict:
    """Return parameterization options for a cache key: files by their content's digest."""
    return {
        key: value.identity() if isinstance(value, FileRef) else value
        for key, value in sorted(options.items())
    }


@dataclass(frozen=True)
class ConceptSettings:
    """Whether to label units with the data set's classes, and when a unit counts as a
    detector of one. The thresholds are applied when the manifest is made: in no cache key."""

    enabled: bool = True  # concept scores whenever the data set has labels
    asked: bool = False  # the recipe set a concept key (say so if the data set has no labels)
    iou: float = 0.04  # NetDissect's SCORE_THRESHOLD, for per-pixel labels
    selectivity: float = 0.5  # class selectivity index, for a class per image ...
    share: float = 0.5  # ... and the best class's share of the unit's top examples

    def as_dict(self) -> dict:
        """Return plain data for the manifest."""
        return {
            "detector_iou": self.iou,
            "detector_selectivity": self.selectivity,
            "detector_share": self.share,
        }


@dataclass(frozen=True)
class DatasetSpec:
    """The recipe's ``[dataset]``: where example images come from and how many to look at."""

    source: str
    samples: int = 1000
    top_k: int = 9
    seed: int = 0
    options: tuple[tuple[str, object], ...] = ()
    concepts: ConceptSettings = field(default_factory=ConceptSettings)

    def as_dict(self) -> dict:
        """Return plain data for manifests and cache keys (the concept settings are apart)."""
        return {
            "source": self.source,
            "samples": self.samples,
            "top_k": self.top_k,
            "seed": self.seed,
            "options": dict(self.options),
        }


CONNECTION_METHODS = ("data", "weights")


@dataclass(frozen=True)
class ConnectionSettings:
    """The recipe's ``[connections]``: which earlier layer each layer is built from (by
    default the nearest selected one before it), by which method, and how many inputs and
    outputs a unit page lists (applied at the manifest: in no cache key)."""

    sources: tuple[tuple[str, str], ...] = ()  # (layer, its source layer) the recipe chose
    top: int = 8
    method: str = "data"


@dataclass(frozen=True)
class MapSettings:
    """The recipe's ``[activation_atlas]``: the layers to map, how many activations to
    sample, the UMAP settings, the grid of cells and the steps of each cell's picture
    (the Activation Atlas's defaults but for steps: None keeps the render's)."""

    layers: tuple[str, ...]
    points: int = 100_000
    grid: int = 20
    n_neighbors: int = 50
    min_dist: float = 0.05
    steps: int | None = None
    seed: int = 0

    def layout(self) -> dict:
        """Return the layout's settings as plain data (its cache key and the manifest's)."""
        return {
            "n_neighbors": self.n_neighbors,
            "min_dist": self.min_dist,
            "metric": "cosine",
            "seed": self.seed,
            "points": self.points,
        }


@dataclass(frozen=True)
class JudgeSpec:
    """The recipe's ``[judge]``: another model that says how much of each class picture it
    sees as that class (never optimised against; its results are cached apart)."""

    model: str
    weights: str | None = None
    options: tuple[tuple[str, object], ...] = ()
