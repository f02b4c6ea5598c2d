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


EXACT = 4096  # below this many points UMAP finds neighbours exactly, here with numpy
CHUNK = 1024  # rows of the similarity matrix at once


def cosine_neighbours(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return each row's k nearest rows by cosine distance, itself first: (indices,
    distances), as UMAP's own exact search gives them (it calls a Python function per
    pair: 13 s for 4,000 points here, this takes a fraction of a second)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    indices = np.zeros((len(unit), k), np.int64)
    distances = np.zeros((len(unit), k), np.float32)
    for start in range(0, len(unit), CHUNK):
        rows = np.arange(start, min(start + CHUNK, len(unit)))
        distance = 1.0 - unit[rows] @ unit.T
        distance[np.arange(len(rows)), rows] = -1.0  # itself first, whatever rounding says
        near = np.argpartition(distance, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(distance, near, 1), axis=1, kind="stable")
        indices[rows] = np.take_along_axis(near, order, 1)
        found = np.take_along_axis(distance, indices[rows], 1)
        distances[rows] = np.maximum(found, 0.0)
    return indices, distances


def fit(vectors: np.ndarray, n_neighbors: int, min_dist: float, seed: int) -> np.ndarray:
    """Return (N, 2) UMAP coordinates of vectors (cosine, seeded: reproducible)."""
    vectors = np.asarray(vectors, np.float32)
    k = min(n_neighbors, len(vectors) - 1)
    exact = {}
    if len(vectors) < EXACT:
        indices, distances = cosine_neighbours(vectors, k)
        exact = {"precomputed_knn": (indices, distances, None)}
        exact["force_approximation_algorithm"] = True  # the search is done: take it
    umap = umap_class()(
        n_neighbors=k,
        min_dist=min_dist,
        metric="cosine",
        random_state=seed,
        n_components=2,
        n_epochs=EPOCHS,
        **exact,
    )
    # UMAP warns on every fit that a seed makes it single-threaded, and that neighbours
    # found here leave it no index to place new points with (a map never adds any).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "n_jobs value", UserWarning)
        warnings.filterwarnings("ignore", "precomputed_knn", UserWarning)
        return umap.fit_transform(vectors).astype(np.float32)


def normalise(coords: np.ndarray) -> np.ndarray:
    """Return coords clipped to each axis's 1st-99th percentiles and scaled to [0, 1]."""
    low, high = np.percentile(coords, [1, 99], axis=0)
    span = np.where(high > low, high - low, 1.0)
    return ((np.clip(coords, low, high) - low) / span).astype(np.float32)


def layout(vectors: np.ndarray, n_neighbors: int, min_dist: float, seed: int) -> np.ndarray:
    """Return the map's (N, 2) coordinates in the unit square. BLAS runs on one thread:
    its sums are ordered by its thread count, and UMAP turned those last-bit differences
    into another map for the same seed (seen between a build and a test process)."""
    from threadpoolctl import threadpool_limits  # scikit-learn's, installed with umap-learn

    with threadpool_limits(limits=1):
        return normalise(fit(vectors, n_neighbors, min_dist, seed))
