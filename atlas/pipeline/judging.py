"""A judge: another model that reads each class picture and says how much of it shows
the class (MACO's transferability, per unit). Its results are cached apart from the
pictures, keyed by the judge and the pictures' keys, so adding a judge recomputes none."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import RecipeError
from ..images import decode_png
from ..models.adapter import ModelAdapter
from ..models.layers import OUTPUT, forward_layers
from ..models.weights import digests_in
from ..recipe import Recipe
from ..registry import Registry
from ..store.cache import Cache, Entry, digest
from ..store.findings import AnalysisStore, Finding

NAME = "judge"
VERSION = "1"
JUDGE_BATCH = 64  # pictures a forward of the judge reads at once


@dataclass
class JudgedLayer:
    """One labelled layer's units the judge reads: (channel, the judge's class, picture key)."""

    layer: str
    units: list[tuple[int, int, str]]
    key: str


@dataclass
class JudgePlan:
    """The judge, the layers it reads and which of their results the cache holds."""

    adapter: ModelAdapter = field(repr=False)
    options: dict = field(default_factory=dict)  # the recipe's [judge] options
    reads: str = "pixels"  # what its output gives: "pixels" or "probability"
    layers: list[JudgedLayer] = field(default_factory=list)
    cached: set[str] = field(default_factory=set)  # keys

    @property
    def missing(self) -> list[JudgedLayer]:
        """Return the layers whose judgement is not stored."""
        return [layer for layer in self.layers if layer.key not in self.cached]

    def key(self, units: Sequence, cache: Cache) -> None:
        """Key each labelled layer's pictures the judge can read (units whose label it also
        has, matched by name) and note which results the cache holds."""
        names = {name: i for i, name in enumerate(classes(self.adapter))}
        store = AnalysisStore(cache.root)
        self.layers, self.cached = [], set()
        for layer in dict.fromkeys(u.layer for u in units):
            judged = [
                (u.channel, names[u.label], u.key)
                for u in units
                if u.layer == layer and u.label in names
            ]
            if not judged:
                continue
            key = digest(
                {
                    "judge": self.adapter.identity(),
                    "options": self.options,
                    "input": self.adapter.input.as_dict(),
                    "pictures": [[key, c] for _, c, key in judged],
                    "version": VERSION,
                }
            )
            self.layers.append(JudgedLayer(layer, judged, key))
            if store.get(NAME, key) is not None:
                self.cached.add(key)

    def keys(self) -> set[str]:
        """Return the cache keys of the judge's results."""
        return {layer.key for layer in self.layers}

    def as_dict(self) -> dict:
        """Return plain data for the manifest and the dry run."""
        return {
            **self.adapter.identity(),
            "options": self.options,
            "description": self.adapter.description,
            "reads": self.reads,
            "layers": [layer.layer for layer in self.layers],
        }


def classes(judge: ModelAdapter) -> list[str]:
    """Return the class names of the judge's output (the labels of its ``output`` layer)."""
    return list(judge.labels.get(OUTPUT, ()))


def reads(judge: ModelAdapter) -> str:
    """Return what the judge's output gives: ``pixels`` (a class map) or ``probability``."""
    size = tuple(judge.input.size)
    x = torch.full((1, judge.input.channels, *size), 0.5)
    with torch.no_grad():
        judge.module.eval()
        out = forward_layers(judge, judge.input.normalize(x), [OUTPUT])
    return "pixels" if out[OUTPUT].dim() == 4 else "probability"


def plan_judge(
    recipe: Recipe, adapter: ModelAdapter, units: Sequence, cache: Cache, registry: Registry
) -> JudgePlan | None:
    """Load the recipe's judge, check it can read the atlas's pictures, and key them."""
    spec = recipe.judge
    if spec is None:
        return None
    where = f"{recipe.where}: [judge] model {spec.model!r}"
    options = dict(spec.options)
    with digests_in(cache.root):
        judge = registry.load_model(spec.model, spec.weights, **options)
    same = (judge.identity(), options) == (adapter.identity(), dict(recipe.model_options))
    if same:
        raise RecipeError(
            f"{where} is the model the atlas visualises; a judge must be another model, one "
            "the pictures were never optimised against"
        )
    if not classes(judge):
        raise RecipeError(
            f"{where} names no classes for its output; a judge needs them to match the "
            "atlas's class units by name"
        )
    if judge.input.channels != adapter.input.channels:
        raise RecipeError(
            f"{where} takes {judge.input.channels}-channel images and the pictures have "
            f"{adapter.input.channels}; choose a judge for the same kind of images"
        )
    plan = JudgePlan(judge, options, reads(judge))
    plan.key(units, cache)
    return plan


def judge_pictures(
    plan: JudgePlan, entries: Mapping[str, Entry | None], cache: Cache, owner: dict
) -> None:
    """Judge the stored pictures of every layer not judged yet, as the site shows them (their
    PNGs), and store the results (a layer with a picture missing waits for a build that has
    it). owner: the identity of the pictures' model, under which `atlas cache info` counts
    the results."""
    store = AnalysisStore(cache.root)
    for judged in plan.missing:
        found = [entries.get(key) for _, _, key in judged.units]
        if any(entry is None for entry in found):
            continue
        pictures = np.stack([decode_png(entry.png.read_bytes()) for entry in found])
        shares = judge_shares(plan.adapter, pictures, [c for _, c, _ in judged.units])
        meta = {"units": [[ch, c, key] for ch, c, key in judged.units], "version": VERSION}
        store.put(Finding(judged.key, NAME, judged.layer, meta, {"shares": shares}, owner))
        plan.cached.add(judged.key)


def judge_shares(judge: ModelAdapter, pictures: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """Return, per picture (N, H, W, C in [0, 1]), how much the judge sees its target
    class: for per-pixel outputs the share of pixels labelled so, for classifiers its
    probability. The judge runs without gradients, in eval mode."""
    judge.module.eval().requires_grad_(False)
    x = torch.from_numpy(np.ascontiguousarray(pictures, np.float32)).permute(0, 3, 1, 2)
    if judge.input.fixed_size and tuple(x.shape[-2:]) != tuple(judge.input.size):
        x = F.interpolate(x, size=tuple(judge.input.size), mode="bilinear", align_corners=False)
    target = torch.as_tensor(list(targets))
    shares = []
    for start in range(0, len(x), JUDGE_BATCH):
        chunk, wanted = x[start : start + JUDGE_BATCH], target[start : start + JUDGE_BATCH]
        with torch.no_grad():
            out = forward_layers(judge, judge.input.normalize(chunk), [OUTPUT])[OUTPUT].float()
        if out.dim() == 4:
            shares.append((out.argmax(1) == wanted[:, None, None]).float().mean((1, 2)))
        else:
            shares.append(out.softmax(1)[torch.arange(len(wanted)), wanted])
    return torch.cat(shares).numpy().round(4)


def judged(plan: JudgePlan | None, cache: Cache) -> dict[tuple[str, int], float]:
    """Return each judged unit's share by (layer, channel), from the stored results."""
    if plan is None:
        return {}
    store, out = AnalysisStore(cache.root), {}
    for layer in plan.layers:
        finding = store.get(NAME, layer.key)
        if finding is None:
            continue
        for (channel, _, _), share in zip(layer.units, finding.arrays["shares"], strict=True):
            out[(layer.layer, channel)] = float(share)
    return out
