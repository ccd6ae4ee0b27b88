"""The analytic roofline itself, as a predictor (no fit)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from latency.predictors.base import PREDICTORS, TOTAL, LatencyPredictor


# ---- analytic: the roofline itself ----------------------------------------------------------------

@dataclass(frozen=True)
class AnalyticConfig:
    rel_std: float = 0.5  # "±50%, uncalibrated": spec-sheet peaks and a guessed op overhead


@PREDICTORS.register
class AnalyticPredictor(LatencyPredictor):
    name, Config, needs, learns = "analytic", AnalyticConfig, (TOTAL,), False

    def __init__(self, feature_names: Sequence[str], config: Any = None) -> None:
        super().__init__(feature_names, config)
        self.fitted = {}  # nothing to learn: usable as built

    def _fit(self, X: np.ndarray, log_y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
        return {}  # checks its input like any predictor, learns nothing: fitting it would make it `calibrated`

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return X[:, self.col(TOTAL)].copy()

    def _predict_std(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.config.rel_std)
