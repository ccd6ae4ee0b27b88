"""An accuracy predictor learnt from the archs a search has scored (Once-for-All screens its
candidates with one), used to choose which of several mutations to evaluate.

A search scores each candidate on a few validation batches: one loss is noisy, but the same genes
recur across hundreds of scored archs, so a linear model over the arch's encoding pools them. The
model is ridge regression on the standardised encoding of the latency predictor
(`latency.features.encode`: per-layer attention type, heads, kv heads, FFN, window; depth, embed,
precision) plus the log of the parameter count, its penalty chosen by generalised
cross-validation from a fixed grid. It is fitted on each arch's *cheap* loss (every arch has one,
on the same batches), a closed form: deterministic, so a resumed search replays the same choices.

Screening (`screen` children per place): the strategy draws up to that many feasible, new children
and proposes the one the model predicts best; with fewer than `min_fit` results told it proposes
the first (there is nothing to learn from yet).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from space import Arch, SearchSpace, analytic_cost

PENALTIES = (0.1, 1.0, 10.0, 100.0, 1000.0)


def arch_matrix(space: SearchSpace, archs: Sequence[Arch], cache: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The model's inputs, one row per arch; `cache` (arch id -> row) keeps rows across fits."""
    from latency.features import encode
    cache = {} if cache is None else cache
    for a in archs:
        if a.id not in cache:
            cache[a.id] = np.append(encode(space, a), math.log(analytic_cost(a).params))
    return np.vstack([cache[a.id] for a in archs]) if archs else np.zeros((0, 0))


class LossModel:
    """Ridge regression of the loss on an arch's encoding (see the module's doc)."""

    def __init__(self, space: SearchSpace, archs: Sequence[Arch], losses: Sequence[float],
                 cache: dict[str, np.ndarray] | None = None) -> None:
        y = np.asarray(losses, dtype=np.float64)
        keep = np.isfinite(y)
        self.cache = {} if cache is None else cache
        X = arch_matrix(space, [a for a, k in zip(archs, keep) if k], self.cache)
        y = y[keep]
        if len(y) < 2:
            raise ValueError(f"an accuracy model needs at least 2 finite losses, got {len(y)}")
        self.space = space
        self.mean, scale = X.mean(axis=0), X.std(axis=0)
        self.cols = scale > 1e-12  # constant columns carry nothing
        self.scale = scale[self.cols]
        Z = (X[:, self.cols] - self.mean[self.cols]) / self.scale
        self.y0 = float(y.mean())
        self.coef, self.penalty = _ridge_gcv(Z, y - self.y0)

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        if not archs:
            return np.zeros(0)
        Z = (arch_matrix(self.space, archs, self.cache)[:, self.cols] - self.mean[self.cols]) / self.scale
        return self.y0 + Z @ self.coef


def _ridge_gcv(Z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Ridge coefficients with the penalty of PENALTIES (times the sample count) that minimises
    the generalised cross-validation error; through one SVD."""
    n = len(y)
    if Z.shape[1] == 0:
        return np.zeros(0), 0.0
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    Uy = U.T @ y
    best: tuple[float, np.ndarray, float] | None = None
    for lam in PENALTIES:
        f = s ** 2 / (s ** 2 + lam * n)  # shrinkage of each component
        fit = U @ (f * Uy)
        dof = f.sum()
        gcv = float(((y - fit) ** 2).mean() / max(1e-12, (1 - dof / n)) ** 2)
        if best is None or gcv < best[0]:
            best = (gcv, Vt.T @ (s / (s ** 2 + lam * n) * Uy), lam)
    return best[1], best[2]


__all__ = ["LossModel", "arch_matrix"]
