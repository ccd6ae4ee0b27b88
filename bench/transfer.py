"""How well does a CPU profile's predictor serve a lookalike machine (the same CPU name, another
generation), once rescaled by the reference arch? Archs measured on this machine with the usual
protocol (`nas profile ... --out FILE`) against the profile's shipped predictor, drift-free: the
measured ratio to the reference arch (timed in the same group) against the predicted ratio (the
prediction over the dataset's reference median).

    nas profile --hardware epyc-2vcpu --samples 120 --out bench/results/transfer/zen1.csv
    python bench/transfer.py --hardware epyc-2vcpu --data bench/results/transfer/zen1.csv \
        --out bench/results/transfer
Results: transfer.json in --out: share within ±10%, median ratio, Kendall τ, beside what the profile
reaches on its own machine (its bundle's held-out figures).

Then HELP's question (a new device from 10 samples): with k archs of this machine known (k = 5, 10,
20, 40; 50 random draws each), how well do three corrections of the profile's predictor do on the
archs not drawn: `scale` (one factor, the median measured/predicted ratio of the k), `loglinear`
(log measured = a + b log predicted, least squares on the k: a size-dependent correction), and, for
contrast, `alone` (a fresh predictor of the same kind fitted on the k rows only).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency.dataset import archs_of, read_dataset  # noqa: E402
from latency.hardware import load_hardware  # noqa: E402
from latency.metrics import latency_metrics  # noqa: E402
from latency.model import latency_model  # noqa: E402
from latency.runner import cpu_identity, cpu_model  # noqa: E402
from space import load_space  # noqa: E402
from space.files import atomic_write_text  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hardware", default="epyc-2vcpu")
    ap.add_argument("--space", default="lm-shakespeare")
    ap.add_argument("--data", required=True, help="measured on this machine: `nas profile ... --out FILE`")
    ap.add_argument("--draws", type=int, default=50, help="random draws of the k known archs, per k")
    ap.add_argument("--out", default="bench/results/transfer")
    args = ap.parse_args()
    hw, space = load_hardware(args.hardware), load_space(args.space)
    model = latency_model(hw, space, space.workload)
    df = read_dataset(args.data)
    df = df[(df.hardware == hw.name) & (df.space == space.name) & (df.workload == str(space.workload))
            & df.ref_ratio.notna()]
    if df.empty:
        sys.exit(f"{args.data}: no {hw.name} rows of {space.name} with workload {space.workload}")
    archs = archs_of(df)
    predicted = model.predict(archs)[0] / float(model.bundle.dataset["ref_s"])  # ratio to the reference
    measured = df.ref_ratio.to_numpy()
    overall = latency_metrics(measured, predicted)
    precision = np.array([a.precision for a in archs])
    by_precision = {p: latency_metrics(measured[precision == p], predicted[precision == p])["within_10"]
                    for p in np.unique(precision)}
    result = {"hardware": hw.name, "profile_cpu": hw.cpu, "this_cpu": {"name": cpu_model(), **cpu_identity()},
              "archs": len(df), "within_10pct": overall["within_10"], "within_10pct_by_precision": by_precision,
              "median_predicted_over_measured": float(np.median(predicted / measured)),
              "kendall_tau": overall["kendall_tau"],
              "median_spread_here": float(df.spread.median()),
              "reference_here_s": float(df.ref_s.median()), "reference_profile_s": float(model.bundle.dataset["ref_s"]),
              "profile_own_metrics": model.bundle.metrics}
    result["few_shot"] = few_shot(archs, predicted, measured, hw, space, args.draws)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "transfer.json", json.dumps(result, indent=2, default=str))
    print(json.dumps({k: v for k, v in result.items() if k != "profile_own_metrics"}, indent=2, default=str))


def few_shot(archs, predicted: np.ndarray, measured: np.ndarray, hw, space, draws: int,
             ks=(5, 10, 20, 40)) -> dict:
    """Share of the archs not drawn within ±10%, mean over `draws` draws of k known archs, per
    correction; all on the drift-free ratio-to-reference scale."""
    from latency.features import feature_names, featurize
    from latency.predictors import PREDICTORS
    rng = np.random.default_rng(0)
    feats, names = featurize(archs, space, space.workload, hw), feature_names(space)
    lp, lm = np.log(predicted), np.log(measured)
    out: dict = {"archs": len(measured)}
    for k in ks:
        if k >= len(measured) - 10:
            continue
        scores: dict[str, list[float]] = {"scale": [], "loglinear": [], "alone": []}
        for _ in range(draws):
            known = rng.choice(len(measured), k, replace=False)
            rest = np.setdiff1d(np.arange(len(measured)), known)
            hit = lambda pred: latency_metrics(measured[rest], pred)["within_10"]  # noqa: E731
            scores["scale"].append(hit(predicted[rest] * np.median(measured[known] / predicted[known])))
            b, a = np.polyfit(lp[known], lm[known], 1)
            scores["loglinear"].append(hit(np.exp(a + b * lp[rest])))
            alone = PREDICTORS.get("gbt")(names).fit(feats[known], measured[known])
            scores["alone"].append(hit(alone.predict(feats[rest])))
        out[str(k)] = {name: {"mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v))}
                       for name, v in scores.items()}
    return out


if __name__ == "__main__":
    main()
