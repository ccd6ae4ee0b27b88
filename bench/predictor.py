"""How good are the latency predictors? k-fold cross-validation on a measured dataset, for every
predictor beside FLOPs alone, and the measurement's own repeatability (the same archs measured
again, later, as the floor no predictor can beat).

    python bench/predictor.py --hardware xeon-2vcpu --repeat 200 --out bench/results/predictor
Results: predictor.json and predictor.png in --out; figures go to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency.dataset import archs_of, latency_target, read_dataset, reference_scale  # noqa: E402
from latency.features import feature_names, featurize  # noqa: E402
from latency.fit import FEW_SHOT, flops_baseline, select_rows  # noqa: E402
from latency.hardware import load_hardware  # noqa: E402
from latency.metrics import latency_metrics  # noqa: E402
from latency.predictors import make_predictor  # noqa: E402
from latency.store import find_dataset  # noqa: E402
from space import load_space  # noqa: E402


def cross_validate(x, y, names, folds: int, seed: int) -> dict[str, np.ndarray]:
    """Out-of-fold predictions of every model, pooled over the folds."""
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(y)) % folds
    preds = {k: np.zeros(len(y)) for k in ("gbt", "mlp", f"calibrated ({FEW_SHOT} samples)", "analytic", "flops only")}
    for f in range(folds):
        test, train = np.where(fold_of == f)[0], np.where(fold_of != f)[0]
        for kind in ("gbt", "mlp"):
            preds[kind][test] = make_predictor(kind, names, seed=seed).fit(x[train], y[train]).predict(x[test])
        few = train[:FEW_SHOT]
        preds[f"calibrated ({FEW_SHOT} samples)"][test] = (
            make_predictor("calibrated", names).fit(x[few], y[few]).predict(x[test]))
        preds["analytic"][test] = make_predictor("analytic", names).predict(x[test])
        preds["flops only"][test] = flops_baseline(x[train], y[train], x[test], names)
    return preds


def repeat_measurements(rows, space, hw, workload, n: int):
    """Measures the first n archs of the dataset again, later, with the same protocol and the same
    reference arch: (first target, repeated target, first raw median, repeated raw median)."""
    import torch
    from latency.profile import reference_arch, time_group
    from latency.protocol import TimingProtocol
    if hw.threads:
        torch.set_num_threads(hw.threads)
    archs = archs_of(rows.iloc[:n])
    scale = reference_scale(rows, reference_arch(space).id)  # the dataset's scale, as latency_target uses
    again, raw = [], []
    for i in range(0, len(archs), 8):
        timings, _ = time_group(archs[i:i + 8], workload, hw.device, TimingProtocol(), hw.threads,
                                reference=reference_arch(space))
        again += [t.ratio * scale for t in timings]
        raw += [t.median for t in timings]
    first = latency_target(rows).to_numpy()[:n]
    return first, np.asarray(again), rows.median_s.to_numpy()[:n], np.asarray(raw)


def per_precision(rows, y, preds) -> dict:
    """The same metrics on the rows of each precision (fp32, int8, ...)."""
    precision = np.array([a.precision for a in archs_of(rows)])
    return {p: {k: latency_metrics(y[precision == p], v[precision == p]) for k, v in preds.items()}
            for p in sorted(set(precision)) if (precision == p).sum() >= 2}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hardware", default="xeon-2vcpu")
    ap.add_argument("--space", default="lm-shakespeare")
    ap.add_argument("--data", default=None, help="dataset CSV (default: the hardware's)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=0, help="re-measure this many archs here (same hardware only)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results/predictor")
    args = ap.parse_args()
    hw, space = load_hardware(args.hardware), load_space(args.space)
    path = Path(args.data) if args.data else find_dataset(hw.name)
    rows = select_rows(read_dataset(path), hw, space, space.workload)
    names = feature_names(space)
    x = featurize(archs_of(rows), space, space.workload, hw)
    y = latency_target(rows).to_numpy(dtype=np.float64)
    t0 = time.time()
    preds = cross_validate(x, y, names, args.folds, args.seed)
    results = {"dataset": str(path), "rows": len(rows), "folds": args.folds, "hardware": hw.name,
               "workload": str(space.workload), "seconds": time.time() - t0,
               "metrics": {k: latency_metrics(y, p) for k, p in preds.items()},
               "per_precision": per_precision(rows, y, preds),
               "spread": {"median": float(rows.spread.median()), "p90": float(rows.spread.quantile(0.9))}}
    if args.repeat:
        first, again, first_raw, again_raw = repeat_measurements(rows, space, hw, space.workload, args.repeat)
        results["repeatability"] = latency_metrics(first, again)
        results["repeatability_raw"] = latency_metrics(first_raw, again_raw)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "predictor.json").write_text(json.dumps(results, indent=2))
    plot(y, preds, results, out / "predictor.png")
    print("| model | RMSE (ms) | MAPE | within ±5% | within ±10% | Kendall τ |\n|---|---|---|---|---|---|")
    table = dict(results["metrics"])
    if "repeatability" in results:
        table["repeat measurement, reference-normalised (floor)"] = results["repeatability"]
        table["repeat measurement, raw medians"] = results["repeatability_raw"]
    for k, m in table.items():
        print(f"| {k} | {m['rmse_ms']:.3f} | {m['mape']:.1f}% | {m['within_5']:.1%} | {m['within_10']:.1%} | "
              f"{m['kendall_tau']:.3f} |")


def plot(y, preds, results, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.6))
    ms = y * 1e3
    lo, hi = ms.min() * 0.9, ms.max() * 1.1
    for ax, kind in zip(axes, ("gbt", f"calibrated ({FEW_SHOT} samples)", "flops only")):
        p = preds[kind] * 1e3
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.9", label="±10%")
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.scatter(ms, p, s=6, alpha=0.6)
        m = results["metrics"][kind]
        ax.set_title(f"{kind}: {m['within_10']:.0%} within ±10%, τ {m['kendall_tau']:.3f}", fontsize=10)
        ax.set_xlabel("measured (ms)")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    axes[0].set_ylabel("predicted, out of fold (ms)")
    axes[0].legend(loc="upper left")
    fig.suptitle(f"{results['hardware']}, {results['workload']}, {results['rows']} archs, {results['folds']}-fold CV")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
