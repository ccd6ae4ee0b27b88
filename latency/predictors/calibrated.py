"""The roofline's terms rescaled from a few measurements (NNLS)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from latency.predictors.base import COMPUTE, MEMORY, OVERHEAD, PREDICTORS, TOTAL, _TINY, LatencyPredictor
from space.errors import UserError


# ---- calibrated: the roofline's terms rescaled from a few measurements ----------------------------

@dataclass(frozen=True)
class CalibratedConfig:
    intercept: bool = True  # a fixed per-call cost (Python, allocator) the roofline does not count
    std_floor: float = 0.02  # a fit to a handful of rows is never better than the timing noise


@PREDICTORS.register
class CalibratedPredictor(LatencyPredictor):
    """latency ≈ a·compute + b·memory + c·bound + d·overhead + e, every coefficient >= 0 (NNLS).
    bound = total - overhead (the per-invocation max(compute, memory)) lets (c, d) = (1, 1) reproduce
    the uncalibrated roofline exactly; the compute/memory sums let a device lean to either side."""
    name, Config, needs = "calibrated", CalibratedConfig, (COMPUTE, MEMORY, OVERHEAD, TOTAL)
    TERMS = ("compute", "memory", "bound", "overhead", "intercept")

    def _design(self, X: np.ndarray) -> np.ndarray:
        c, m, o, t = (X[:, self.col(k)] for k in (COMPUTE, MEMORY, OVERHEAD, TOTAL))
        cols = [c, m, np.maximum(t - o, 0.0), o] + ([np.ones(len(X))] if self.config.intercept else [])
        return np.stack(cols, axis=1)  # (N, terms) seconds

    def _fit(self, X: np.ndarray, log_y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
        y, A = np.exp(log_y), self._design(X)
        scale = np.maximum(A.max(axis=0), _TINY)  # columns span 1e-6..1 s: rescale for a well-posed NNLS
        rw = np.sqrt(w) / y  # dividing each row by y: least squares on the *relative* error
        from scipy.optimize import nnls
        coef, _ = nnls(A / scale * rw[:, None], np.sqrt(w))
        coef = coef / scale
        if not np.any(coef > 0):
            raise UserError("calibrated predictor: the fit found no positive coefficient; check the measured rows")
        rel = A @ coef / y - 1.0
        dof = max(len(y) - int(np.sum(coef > 0)), 1)  # residuals of an exact fit say nothing: count the dof
        std = math.sqrt(float(np.sum(w * rel ** 2)) / dof)
        return {"coef": coef, "rel_std": max(std, self.config.std_floor)}

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._design(X) @ np.asarray(self.fitted["coef"])

    def _predict_std(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), float(self.fitted["rel_std"]))

    def coefficients(self) -> dict[str, float]:
        return dict(zip(self.TERMS, map(float, self.fitted["coef"])))
