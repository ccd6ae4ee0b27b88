"""Latency predictors: a feature matrix (latency.features.featurize) -> seconds.

Every learned model fits log(latency): relative error is what matters, and latencies span orders of
magnitude. `mlp` and `gbt` learn by default the *residual* over the analytic roofline estimate,
log(y / roofline.total_s): the roofline carries the physics (and extrapolates), the model learns the
correction. `calibrated` rescales the roofline's terms from a handful of measurements (a new device
from <= 20 samples); `analytic` is the roofline itself. Hyper-parameters are one frozen dataclass per
predictor; the learned content is a plain dict (`state()`), so a bundle can rebuild it exactly.
"""
from latency.predictors.base import (COMPUTE, MEMORY, OVERHEAD, PREDICTORS, TOTAL, LatencyPredictor, make_config,
                                     make_predictor)
# importing a predictor registers it; this order is the order users see
from latency.predictors import analytic, calibrated, gbt, mlp  # noqa: E402,F401  isort: skip
from latency.predictors.gbt import _export_trees, _tree_predict  # noqa: E402,F401  (bench/predictor.py)

__all__ = ["COMPUTE", "MEMORY", "OVERHEAD", "PREDICTORS", "TOTAL", "LatencyPredictor", "make_config", "make_predictor"]
