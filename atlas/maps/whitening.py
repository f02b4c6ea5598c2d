"""The Activation Atlas's whitening: a cell's mean vector v is drawn as S·v with
S = (AᵀA / N + εI)⁻¹ over the N sampled activations A, which turns a direction that is
merely common into one that is specific. Dead channels make AᵀA singular: the ridge ε,
a small fraction of the mean variance, keeps S finite (their components of v are zero)."""

from __future__ import annotations

import numpy as np

RIDGE = 1e-3  # ε as a fraction of the mean of AᵀA/N's diagonal


def whitening(samples: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    """Return S = (AᵀA/N + εI)⁻¹ for samples A (N, C), ε = ridge × mean diagonal."""
    a = np.asarray(samples, np.float64)
    gram = a.T @ a / len(a)
    eps = ridge * float(np.mean(np.diag(gram))) or ridge
    return np.linalg.inv(gram + eps * np.eye(len(gram)))


def whitened(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Return S·v as float32."""
    return (matrix @ np.asarray(vector, np.float64)).astype(np.float32)
