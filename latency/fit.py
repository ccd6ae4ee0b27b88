"""Fitting a latency predictor on a measured dataset, and judging it honestly: on a held-out split,
beside a FLOPs-only baseline, the uncalibrated analytic model, and the measurement's own noise."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latency.dataset import archs_of, latency_target
from latency.features import FEATURE_VERSION, feature_names, featurize
from latency.hardware import Hardware
from latency.metrics import latency_metrics
from latency.predictors import make_predictor
from space import SearchSpace, Workload
from space.errors import UserError

FEW_SHOT = 20  # samples the calibrated analytic model gets: the "new device" budget
CURRENT = "current predictor"  # the one answering before this fit, scored on the same held-out rows


@dataclass
class FitResult:
    predictor: Any  # fitted on every row
    metrics: dict[str, dict[str, float]]  # held-out metrics per model
    test: pd.DataFrame  # held-out rows with each model's prediction
    repeatability: dict[str, float]
    rows: int


def select_rows(df: pd.DataFrame, hw: Hardware, space: SearchSpace, workload: Workload) -> pd.DataFrame:
    rows = df[(df.hardware == hw.name) & (df.space == space.name) & (df.workload == str(workload))]
    if len(rows) < 10:
        raise UserError(f"only {len(rows)} measured rows for {hw.name} / {space.name} / {workload}; need at least 10 "
                        f"(`nas profile --hardware {hw.name} --space {space.name} --samples 200`)")
    return rows.reset_index(drop=True)


def flops_baseline(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, names: list[str]) -> np.ndarray:
    """log latency = a + b log FLOPs: what FLOPs alone can tell."""
    i = names.index("analytic.flops")
    b, a = np.polyfit(np.log(train_x[:, i]), np.log(train_y), 1)
    return np.exp(a + b * np.log(test_x[:, i]))


def fit_and_report(df: pd.DataFrame, hw: Hardware, space: SearchSpace, workload: Workload, predictor: str = "gbt",
                   test_fraction: float = 0.2, seed: int = 0, current: Any = None,
                   test_among: set[str] | None = None) -> FitResult:
    """Fits `predictor` on the rows of (hw, space, workload) and judges it on held-out rows beside
    FLOPs alone, the analytic model, a 20-sample calibration and, given `current` (the predictor
    that answers today, a Bundle), that one too. `test_among`: hold out only rows of these arch ids
    (the new measurements, which the current predictor never saw)."""
    rows = select_rows(df, hw, space, workload)
    names = feature_names(space)
    x = featurize(archs_of(rows), space, workload, hw)
    y = latency_target(rows).to_numpy(dtype=np.float64)
    rng = np.random.default_rng(seed)
    pool = np.arange(len(rows)) if test_among is None else np.flatnonzero(rows.arch_id.isin(test_among).to_numpy())
    n_test = min(len(pool) - (1 if test_among is None else 0), max(2, int(round(test_fraction * len(pool)))))
    test = rng.permutation(pool)[:n_test]
    train = np.setdiff1d(np.arange(len(rows)), test)
    def fresh(kind: str):
        return make_predictor(kind, names, **({"seed": seed} if kind in ("gbt", "mlp") else {}))

    preds = {predictor: fresh(predictor).fit(x[train], y[train]).predict(x[test]),
             "flops only": flops_baseline(x[train], y[train], x[test], names),
             "analytic (uncalibrated)": make_predictor("analytic", names).predict(x[test])}
    few = train[:FEW_SHOT]
    preds[f"calibrated ({len(few)} samples)"] = make_predictor("calibrated", names).fit(x[few], y[few]).predict(x[test])
    if current is not None:
        preds[CURRENT] = current.predict(archs_of(rows.iloc[test]))[0]
    metrics = {name: latency_metrics(y[test], p) for name, p in preds.items()}
    table = rows.iloc[test][["arch_id", "median_s", "spread"]].copy()
    for name, p in preds.items():
        table[name] = p
    final = fresh(predictor).fit(x, y)
    spread = rows.spread.to_numpy()
    repeat = {"median_spread": float(np.median(spread)), "p90_spread": float(np.quantile(spread, 0.9))}
    return FitResult(final, metrics, table, repeat, len(rows))


def plot_predictions(result: FitResult, predictor: str, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = result.test
    fig, ax = plt.subplots(figsize=(5.5, 5))
    lo, hi = t.median_s.min() * 1e3 * 0.9, t.median_s.max() * 1e3 * 1.1
    ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.9", label="±10%")
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.scatter(t.median_s * 1e3, t["flops only"] * 1e3, s=10, c="tab:gray", alpha=0.6, label="FLOPs only")
    ax.scatter(t.median_s * 1e3, t[predictor] * 1e3, s=12, c="tab:blue", label=predictor)
    m = result.metrics[predictor]
    ax.set_title(f"{title}\n{predictor}: {m['within_10']:.0%} within ±10%, Kendall τ {m['kendall_tau']:.2f}", fontsize=9)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = ["CURRENT", "FEATURE_VERSION", "FEW_SHOT", "FitResult", "fit_and_report", "plot_predictions", "select_rows"]
