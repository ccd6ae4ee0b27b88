"""One latency predictor per context length, or one for all lengths with the length as a feature?

From a measured dataset holding one space's archs at several workloads that differ in prompt length
(`nas profile --space lm-shakespeare-long --workload batch=1,len=L,gen=128` for each L), on the same
held-out archs at every length:

- per length: the predictor fitted on that length's rows alone (what hwnas ships today: one bundle
  per workload);
- joint: one predictor fitted on every length's rows, its features the arch's and the analytic
  costs at each row's own workload plus the length itself;
- joint, that length unseen: the same, with every row of the length left out of its training (can
  a predictor answer a length nobody profiled?), beside the analytic roofline there.

Held-out error as everywhere in hwnas: share within ±10%, MAPE, Kendall τ (latency/metrics.py).

    python bench/length_predictor.py --hardware epyc-2vcpu --space lm-shakespeare-long \\
        --dataset configs/measured/epyc-2vcpu/latency.csv --out bench/results/length_predictor
Results: length_predictor.json in --out; the table goes to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency.dataset import archs_of, latency_target, read_dataset  # noqa: E402
from latency.features import feature_names, featurize  # noqa: E402
from latency.hardware import load_hardware  # noqa: E402
from latency.metrics import latency_metrics  # noqa: E402
from latency.predictors import make_predictor  # noqa: E402
from space import Workload, load_space  # noqa: E402
from space.files import atomic_write_text  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hardware", default="epyc-2vcpu")
    ap.add_argument("--space", default="lm-shakespeare-long")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--predictor", default="gbt")
    ap.add_argument("--test-fraction", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results/length_predictor")
    args = ap.parse_args()
    hw, space = load_hardware(args.hardware), load_space(args.space)
    df = read_dataset(args.dataset)
    df = df[(df.hardware == hw.name) & (df.space == space.name)].reset_index(drop=True)
    workloads = sorted({Workload.parse(w) for w in df.workload}, key=lambda w: w.seq_len)
    if len({(w.batch, w.gen_tokens) for w in workloads}) != 1 or len(workloads) < 2:
        raise SystemExit(f"{args.dataset}: need rows of {space.name} on {hw.name} at 2 or more prompt lengths of one "
                         f"batch and gen; found {', '.join(map(str, workloads)) or 'none'}")
    names = feature_names(space) + ["workload.seq_len"]
    per: dict[int, dict] = {}
    for w in workloads:
        rows = df[df.workload == str(w)].reset_index(drop=True)
        x = np.column_stack([featurize(archs_of(rows), space, w, hw), np.full(len(rows), float(w.seq_len))])
        per[w.seq_len] = {"rows": rows, "x": x, "y": latency_target(rows).to_numpy(dtype=np.float64)}
    # held out: the same archs at every length where they were measured
    ids = sorted(set.intersection(*(set(p["rows"].arch_id) for p in per.values())))
    if len(ids) < 8:
        raise SystemExit(f"{args.dataset}: only {len(ids)} archs were measured at every length; profile the same "
                         f"--seed at each length with --samples 40 or more")
    rng = np.random.default_rng(args.seed)
    test_ids = set(rng.permutation(ids)[:max(2, int(round(args.test_fraction * len(ids))))])
    rng_seed = {"seed": args.seed} if args.predictor in ("gbt", "mlp") else {}

    def split(p):
        test = p["rows"].arch_id.isin(test_ids).to_numpy()
        return ~test, test
    results: dict = {"hardware": hw.name, "space": space.name, "predictor": args.predictor,
                     "workloads": [str(w) for w in workloads], "held_out_archs": len(test_ids), "lengths": {}}
    for L, p in per.items():
        tr, te = split(p)
        own = make_predictor(args.predictor, names[:-1], **rng_seed).fit(p["x"][tr, :-1], p["y"][tr])
        xs = np.vstack([q["x"][split(q)[0]] for q in per.values()])
        ys = np.concatenate([q["y"][split(q)[0]] for q in per.values()])
        joint = make_predictor(args.predictor, names, **rng_seed).fit(xs, ys)
        others = [q for m, q in per.items() if m != L]
        xo = np.vstack([q["x"][split(q)[0]] for q in others])
        yo = np.concatenate([q["y"][split(q)[0]] for q in others])
        unseen = make_predictor(args.predictor, names, **rng_seed).fit(xo, yo)
        analytic = make_predictor("analytic", names[:-1]).predict(p["x"][te, :-1])
        y = p["y"][te]
        results["lengths"][L] = {
            "rows": int(len(p["y"])), "test_rows": int(te.sum()),
            "per length": latency_metrics(y, own.predict(p["x"][te, :-1])),
            "joint": latency_metrics(y, joint.predict(p["x"][te])),
            "joint, length unseen": latency_metrics(y, unseen.predict(p["x"][te])),
            "analytic (uncalibrated)": latency_metrics(y, analytic)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "length_predictor.json", json.dumps(results, indent=1))
    models = ["per length", "joint", "joint, length unseen", "analytic (uncalibrated)"]
    print("| prompt length | rows (held out) | " + " | ".join(models) + " |")
    print("|---" * (len(models) + 2) + "|")
    for L, r in results["lengths"].items():
        cells = [f"{r[m]['within_10']:.0%} within ±10%, MAPE {r[m]['mape']:.1f}%, τ {r[m]['kendall_tau']:.2f}"
                 for m in models]
        print(f"| {L} | {r['rows']} ({r['test_rows']}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
