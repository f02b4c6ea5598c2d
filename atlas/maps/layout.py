"""Lay sampled activations out on a plane with UMAP, as the Activation Atlas does: cosine
distance, 50 neighbours, minimum distance 0.05, seeded; then clip each axis to its 1st-99th
percentiles and scale it to [0, 1]."""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import AtlasError

EXTRA = "feature-atlas[maps]"
EPOCHS = 200  # UMAP's own choice above 10,000 points (the article's 1,000,000); below, it
# would take 500, two and a half times as long for a map that looks the same


def umap_class():
    """Return umap-learn's UMAP, or say in one line which extra installs it."""
    try:
        from umap import UMAP
    except ImportError:
        raise AtlasError(f"an activation atlas needs umap-learn: pip install '{EXTRA}'") from None
    return UMAP


def fit(vectors: np.ndarray, n_neighbors: int, min_dist: float, seed: int) -> np.ndarray:
    """Return (N, 2) UMAP coordinates of vectors (cosine, seeded: reproducible)."""
    umap = umap_class()(
        n_neighbors=min(n_neighbors, len(vectors) - 1),
        min_dist=min_dist,
        metric="cosine",
        random_state=seed,
        n_components=2,
        n_epochs=EPOCHS,
    )
    with warnings.catch_warnings():  # a seed makes UMAP single-threaded; it says so each time
        warnings.filterwarnings("ignore", "n_jobs value", UserWarning)
        return umap.fit_transform(np.asarray(vectors, np.float32)).astype(np.float32)


def normalise(coords: np.ndarray) -> np.ndarray:
    """Return coords clipped to each axis's 1st-99th percentiles and scaled to [0, 1]."""
    low, high = np.percentile(coords, [1, 99], axis=0)
    span = np.where(high > low, high - low, 1.0)
    return ((np.clip(coords, low, high) - low) / span).astype(np.float32)


def layout(vectors: np.ndarray, n_neighbors: int, min_dist: float, seed: int) -> np.ndarray:
    """Return the map's (N, 2) coordinates in the unit square."""
    return normalise(fit(vectors, n_neighbors, min_dist, seed))
