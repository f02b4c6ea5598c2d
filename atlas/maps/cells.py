"""Cut a map into a grid of cells: per kept cell its place, count, mean activation vector,
nearest real points, class and the units nearest its direction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_COUNT = 5  # cells with this many points or fewer are dropped (the article's)
PATCHES = 3  # real patches kept per cell
UNITS = 5  # units listed per cell


@dataclass(frozen=True)
class Cell:
    """One kept cell of a map's grid: its column and row (from the bottom-left), centre in
    the unit square, how many points fell in it and what they share."""

    column: int
    row: int
    x: float
    y: float
    count: int
    mean: np.ndarray  # the points' mean activation vector
    nearest: tuple[int, ...]  # indices of the points nearest the mean (cosine)
    klass: int | None = None  # the argmax of the points' mean class attribution

    def units(self, top: int = UNITS) -> list[tuple[int, float]]:
        """Return the channels whose basis direction is nearest the mean: (channel, cosine)."""
        norm = float(np.linalg.norm(self.mean)) or 1.0
        order = np.argsort(-self.mean, kind="stable")[:top]
        return [(int(c), float(self.mean[c] / norm)) for c in order if self.mean[c] > 0]


def cosine_nearest(vectors: np.ndarray, target: np.ndarray, k: int) -> np.ndarray:
    """Return the indices of the k rows of vectors nearest target by cosine similarity."""
    norms = np.linalg.norm(vectors, axis=1) * (np.linalg.norm(target) or 1.0)
    similarity = vectors @ target / np.where(norms > 0, norms, 1.0)
    return np.argsort(-similarity, kind="stable")[:k]


def grid_cells(
    coords: np.ndarray,
    vectors: np.ndarray,
    grid: int,
    attributions: np.ndarray | None = None,
) -> list[Cell]:
    """Return the kept cells of a grid × grid cut of the unit square, row by row from the
    bottom; coords (N, 2) in [0, 1], vectors (N, C), attributions (N, K) or None."""
    index = np.minimum((coords * grid).astype(np.int64), grid - 1)
    flat = index[:, 1] * grid + index[:, 0]
    cells = []
    for cell in np.unique(flat):
        members = np.flatnonzero(flat == cell)
        if len(members) <= MIN_COUNT:
            continue
        row, column = divmod(int(cell), grid)
        mean = vectors[members].mean(0)
        nearest = members[cosine_nearest(vectors[members], mean, PATCHES)]
        klass = None
        if attributions is not None:
            klass = int(np.argmax(attributions[members].mean(0)))
        centre_x, centre_y = (column + 0.5) / grid, (row + 0.5) / grid
        cells.append(
            Cell(
                column, row, centre_x, centre_y, len(members), mean, tuple(map(int, nearest)), klass
            )
        )
    return cells
