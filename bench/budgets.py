"""Budgets that hold in wall-clock time: search at several budgets on this CPU (`xeon-2vcpu`),
export each answer, then, in a separate run, time every exported model with `nas measure` (raw
wall clock, its own process) and compare with its budget.

    python bench/budgets.py search --budgets 30ms 40ms 50ms 60ms 75ms 90ms --out bench/results/budgets
    python bench/budgets.py measure --out bench/results/budgets        # later, quiet machine wanted
Results: searches.json, budgets.json (--file) in --out; the table goes to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas import api  # noqa: E402


def search(args) -> None:
    out = Path(args.out)
    done = {}
    for budget in args.budgets:
        t0 = time.time()
        run = api.search(args.hardware, budget, space=args.space, supernet=args.supernet, iterations=args.iterations,
                         seed=args.seed, confidence=args.confidence, out=out / f"run-{budget}", progress=False)
        model = api.export(run.run_dir, out=out / f"model-{budget}")
        best = run.best
        done[budget] = {"arch_id": best["arch_id"], "loss": best["loss"], "predicted_s": best["latency_s"],
                        "bound_s": best["latency_bound_s"], "budget_s": run.record.latency_budget_s,
                        "calibration": run.record.calibration, "model": str(model.folder),
                        "precision": model.arch.precision, "seconds": time.time() - t0}
        print(budget, json.dumps(done[budget]), flush=True)
    (out / "searches.json").write_text(json.dumps({"args": vars(args), "searches": done}, indent=2))


def measure(args) -> None:
    out = Path(args.out)
    searches = json.loads((out / "searches.json").read_text())["searches"]
    rows = []
    for budget, s in searches.items():
        m = api.measure(s["model"], rounds=args.rounds)
        rows.append({"budget": budget, "budget_s": s["budget_s"], "predicted_s": s["predicted_s"],
                     "bound_s": s["bound_s"], "measured_s": m.median_s, "spread": m.spread,
                     "within": m.median_s <= s["budget_s"], "under": 1 - m.median_s / s["budget_s"],
                     "precision": s["precision"], "device": m.device_name, "threads": m.threads})
        print(json.dumps(rows[-1]), flush=True)
    summary = {"within_share": sum(r["within"] for r in rows) / len(rows),
               "mean_under": statistics.mean(r["under"] for r in rows),
               "mean_measured_over_predicted": statistics.mean(r["measured_s"] / r["predicted_s"] for r in rows)}
    (out / args.file).write_text(json.dumps({"args": vars(args), "rows": rows, "summary": summary}, indent=2))
    print("| budget | predicted | bound (90%) | measured (raw median) | spread | within? | under budget by |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['budget']} | {r['predicted_s'] * 1e3:.1f} ms | {r['bound_s'] * 1e3:.1f} ms | "
              f"{r['measured_s'] * 1e3:.1f} ms | {r['spread']:.1%} | {'yes' if r['within'] else 'NO'} | "
              f"{r['under']:.1%} |")
    print(json.dumps(summary))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="stage", required=True)
    s = sub.add_parser("search")
    s.add_argument("--hardware", default="xeon-2vcpu")
    s.add_argument("--space", default="lm-shakespeare")
    s.add_argument("--supernet", default=None, help="default: the user's, else the shipped one")
    s.add_argument("--budgets", nargs="+", default=["30ms", "40ms", "50ms", "60ms", "75ms", "90ms"])
    s.add_argument("--iterations", type=int, default=200)
    s.add_argument("--confidence", type=float, default=0.9)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="bench/results/budgets")
    m = sub.add_parser("measure")
    m.add_argument("--rounds", type=int, default=21)
    m.add_argument("--out", default="bench/results/budgets")
    m.add_argument("--file", default="budgets.json", help="results file in --out (one per timing run)")
    args = ap.parse_args()
    {"search": search, "measure": measure}[args.stage](args)


if __name__ == "__main__":
    main()
