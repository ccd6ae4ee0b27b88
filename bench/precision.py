"""What precision as a search dimension buys on this CPU (`xeon-2vcpu`: fp32 and int8).

1. Per arch size: int8 (dynamic quantization) against fp32, latency measured side by side (one
   interleaved group with the reference arch) and the inherited loss on the test split.
2. At one budget: the search over fp32 archs only against the search over fp32 and int8 archs
   (same supernet, predictor, seeds): best loss within the budget, the Pareto fronts, and the
   measured latency of both answers.

    python bench/precision.py --supernet DIR --budget 40ms --out bench/results/precision   # quiet machine
Results: precision.json, precision.png in --out; the tables go to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency.hardware import load_hardware  # noqa: E402
from latency.measure import measure  # noqa: E402
from latency.protocol import TimingProtocol  # noqa: E402
from nas import api  # noqa: E402
from nas.search import parse_duration, run_search  # noqa: E402
from nas.search.report import feasible, pareto  # noqa: E402
from space import analytic_cost, load_space  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hardware", default="xeon-2vcpu")
    ap.add_argument("--space", default="lm-shakespeare")
    ap.add_argument("--supernet", default=None)
    ap.add_argument("--budget", default="40ms")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="bench/results/precision")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hw, full = load_hardware(args.hardware), load_space(args.space)
    folder = args.supernet or str(api.choose_supernet(full, None).folder)
    test = api.supernet_evaluator(folder, None, split="test")
    val = api.supernet_evaluator(folder, 4)
    res: dict = {"args": vars(args), "supernet": folder}

    # 1. int8 against fp32, per size
    sizes = {"smallest": full.smallest(), "largest": full.largest(), **{f"sample {i}": full.sample(100 + i)
                                                                        for i in range(4)}}
    archs = [a.with_precision(p) for a in sizes.values() for p in ("fp32", "int8")]
    torch.set_num_threads(hw.threads or 1)
    timed = measure(archs, full.workload, hw.name, TimingProtocol(rounds=9, extra_rounds=8))
    rows = []
    for (name, a), (t32, t8) in zip(sizes.items(), zip(timed[::2], timed[1::2])):
        l32, l8 = test.loss(a.with_precision("fp32")), test.loss(a.with_precision("int8"))
        rows.append({"arch": name, "params": analytic_cost(a).params, "fp32_s": t32.raw_s, "int8_s": t8.raw_s,
                     "speedup": t32.raw_s / t8.raw_s, "test_loss_fp32": l32, "test_loss_int8": l8,
                     "loss_cost": l8 - l32})
        print(json.dumps(rows[-1]), flush=True)
    res["per_size"] = rows

    # 2. the search with and without int8, at one budget
    budget = parse_duration(args.budget)
    model = api.plan_search(hw, args.budget, space=full, supernet=folder, out=out / "plan").model

    def latency(archs):
        return [float(s) for s in model.predict(archs)[0]]

    def bound(archs):
        return [float(s) for s in model.bound(archs, 0.9)]
    runs: dict = {}
    for label, precisions in (("fp32 only", ("fp32",)), ("fp32 + int8", ("fp32", "int8"))):
        space = dataclasses.replace(full, precision=precisions)
        runs[label] = []
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                r = run_search(space, "evolution", evaluate=val.losses, latency=latency, bound=bound, budget_s=budget,
                               iterations=args.iterations, batch=8, run_dir=Path(tmp), seed=seed,
                               options={"population": 40, "sample_size": 10}, hardware=hw.name)
            best = feasible(r.trials, budget)[0]
            runs[label].append({"seed": seed, "best": best, "front": pareto(r.trials)})
            print(label, seed, best["arch_id"], best["loss"], json.loads(best["arch"]).get("precision", "fp32"),
                  flush=True)
    summary = {}
    for label, rs in runs.items():
        bests = [r["best"] for r in rs]
        archs = [api.Arch.from_json(b["arch"]) for b in bests]
        summary[label] = {"best_val_loss": [b["loss"] for b in bests],
                          "test_loss": [test.loss(a) for a in archs],
                          "predicted_s": [b["latency_s"] for b in bests],
                          "int8_share_of_answers": sum(a.precision == "int8" for a in archs) / len(archs)}
    measured = measure([api.Arch.from_json(r["best"]["arch"]) for rs in runs.values() for r in rs], full.workload,
                       hw.name, TimingProtocol(rounds=9, extra_rounds=8))
    k = 0
    for label, rs in runs.items():
        summary[label]["measured_s"] = [m.raw_s for m in measured[k:k + len(rs)]]
        k += len(rs)
    res["search"] = {"budget": args.budget, "summary": summary,
                     "fronts": {label: [r["front"] for r in rs] for label, rs in runs.items()}}
    (out / "precision.json").write_text(json.dumps(res, indent=2, default=str))
    plot(runs, budget, hw.name, out / "precision.png")
    print(json.dumps(summary, indent=2))


def plot(runs, budget, hardware: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for (label, rs), c in zip(runs.items(), ("tab:blue", "tab:orange")):
        front = rs[0]["front"]
        ax.plot([t["latency_s"] * 1e3 for t in front], [t["loss"] for t in front], "o-", ms=3, c=c, label=label)
    ax.axvline(budget * 1e3, ls="--", c="tab:red", label="budget")
    ax.set_xlabel(f"predicted latency on {hardware} (ms)")
    ax.set_ylabel("validation loss, inherited (nats/byte)")
    ax.legend(fontsize=8)
    ax.set_title("Pareto fronts with and without the precision dimension (seed 0)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
