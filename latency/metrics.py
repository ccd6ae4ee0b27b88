"""How good a latency prediction is. Relative error is what matters (a 2 ms miss is nothing on a
1 s model and everything on a 5 ms one), and a search only needs the *order* right, hence Kendall's tau."""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import kendalltau

from space.errors import UserError

_EPS = 1e-12  # |1.05/1 - 1| is 0.05000000000000004 in floats: a 5% miss must count as within 5%


def latency_metrics(measured_s: Any, predicted_s: Any) -> dict[str, float | int]:
    """rmse_ms, mape (%), within_5 / within_10 (share of rows with |pred/meas - 1| <= 5% / 10%),
    kendall_tau (nan below 2 rows or for constant inputs) and n. Both inputs in seconds."""
    m = np.asarray(measured_s, dtype=np.float64).ravel()
    p = np.asarray(predicted_s, dtype=np.float64).ravel()
    if m.shape != p.shape:
        raise UserError(f"latency_metrics: {m.size} measured vs {p.size} predicted latencies; pass one per arch")
    if m.size == 0:
        raise UserError("latency_metrics: no rows to score; pass at least one measured latency")
    if not (np.all(np.isfinite(m)) and np.all(m > 0)):
        raise UserError("latency_metrics: measured latencies must be finite and > 0 seconds")
    if not np.all(np.isfinite(p)):
        raise UserError("latency_metrics: predicted latencies must be finite")
    rel = np.abs(p / m - 1.0)
    tau = float(kendalltau(m, p).statistic) if m.size >= 2 else float("nan")
    return {"rmse_ms": float(np.sqrt(np.mean((p - m) ** 2)) * 1e3), "mape": float(np.mean(rel) * 100.0),
            "within_5": float(np.mean(rel <= 0.05 + _EPS)), "within_10": float(np.mean(rel <= 0.10 + _EPS)),
            "kendall_tau": tau, "n": int(m.size)}
