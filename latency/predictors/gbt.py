"""Gradient-boosted trees, exported to plain node arrays."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from latency.predictors.base import PREDICTORS, TOTAL, LatencyPredictor
from space.options import fraction, positive

if TYPE_CHECKING:
    from sklearn.ensemble import GradientBoostingRegressor


# ---- gbt: gradient-boosted trees, exported to plain node arrays -----------------------------------

@dataclass(frozen=True)
class GBTConfig:
    trees: int = 300
    learning_rate: float = field(default=0.05, metadata=positive())
    depth: int = 4
    min_leaf: int = 3
    subsample: float = field(default=0.8, metadata=fraction(low_open=True))
    folds: int = 5  # out-of-fold residuals give predict_std
    residual: bool = True
    seed: int = 0


@PREDICTORS.register
class GBTPredictor(LatencyPredictor):
    """scikit-learn's GradientBoostingRegressor, its trees then copied into flat arrays through the
    public `tree_` attributes: the state is plain numpy, independent of the scikit-learn version."""
    name, Config, needs = "gbt", GBTConfig, (TOTAL,)

    def _model(self, n: int) -> GradientBoostingRegressor:
        from sklearn.ensemble import GradientBoostingRegressor
        c = self.config
        return GradientBoostingRegressor(n_estimators=c.trees, learning_rate=c.learning_rate, max_depth=c.depth,
                                         min_samples_leaf=min(c.min_leaf, max(n // 2, 1)), subsample=c.subsample,
                                         random_state=c.seed)

    def _fit(self, X: np.ndarray, log_y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
        t = log_y - self._offset(X, self.config.residual)
        fitted = _export_trees(self._model(len(X)).fit(X, t, sample_weight=w), X[:1])
        folds = min(self.config.folds, len(X))
        if folds < 2:
            return {**fitted, "rel_std": 0.5}  # one row: nothing to estimate a spread from
        oof = np.empty(len(X))
        from sklearn.model_selection import KFold
        for tr, te in KFold(folds, shuffle=True, random_state=self.config.seed).split(X):
            part = _export_trees(self._model(len(tr)).fit(X[tr], t[tr], sample_weight=w[tr]), X[:1])
            oof[te] = _tree_predict(part, X[te])
        return {**fitted, "rel_std": math.sqrt(float(np.average((oof - t) ** 2, weights=w)))}

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return np.exp(_tree_predict(self.fitted, X) + self._offset(X, self.config.residual))

    def _predict_std(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), float(self.fitted["rel_std"]))


def _export_trees(model: GradientBoostingRegressor, x0: np.ndarray) -> dict[str, Any]:
    """All trees in one node table. A leaf points to itself with threshold +inf, so a fixed number of
    steps (the depth) walks every tree; leaf values are pre-multiplied by the learning rate."""
    left, right, feat, thr, val, roots = [], [], [], [], [], []
    base = 0
    for est in model.estimators_[:, 0]:
        tr = est.tree_
        leaf = tr.children_left < 0
        own = np.arange(tr.node_count) + base
        left.append(np.where(leaf, own, tr.children_left + base))
        right.append(np.where(leaf, own, tr.children_right + base))
        feat.append(np.where(leaf, 0, tr.feature))
        thr.append(np.where(leaf, np.inf, tr.threshold))
        val.append(tr.value[:, 0, 0] * model.learning_rate)
        roots.append(base)
        base += tr.node_count
    cat = np.concatenate
    return {"baseline": float(model.init_.predict(x0)[0]), "roots": np.asarray(roots, dtype=np.int64),
            "left": cat(left).astype(np.int64), "right": cat(right).astype(np.int64),
            "feature": cat(feat).astype(np.int64), "threshold": cat(thr).astype(np.float64),
            "value": cat(val).astype(np.float64), "depth": int(model.max_depth)}


def _tree_predict(f: dict[str, Any], X: np.ndarray) -> np.ndarray:
    # scikit-learn's trees compare float32 features with float64 thresholds: do exactly the same
    Xf = X.astype(np.float32).astype(np.float64)
    left, right, feat, thr = (np.asarray(f[k]) for k in ("left", "right", "feature", "threshold"))
    node = np.repeat(np.asarray(f["roots"])[None, :], len(X), axis=0)  # (N, trees)
    rows = np.arange(len(X))[:, None]
    for _ in range(int(f["depth"])):
        node = np.where(Xf[rows, feat[node]] <= thr[node], left[node], right[node])
    return f["baseline"] + np.asarray(f["value"])[node].sum(axis=1)
