"""Which search strategy finds the best arch within a latency budget, for how many evaluations?
And how much faster do 2 Ray workers score candidates than one process?

For one budget on this CPU's measured profile (xeon-2vcpu): best feasible validation loss and the
hypervolume of (loss, latency) against the number of evaluated archs, for random, tournament
evolution, HAT's evolution, TPE and NSGA-II, over several seeds; then the throughput of scoring a
batch of candidates serially against 2 Ray actors, interleaved rounds, medians.

    python bench/search.py --budget 45ms --iterations 240 --seeds 0 1 2 3 4 --out bench/results/search
Results: search.json, search.png in --out; figures go to docs/benchmarks.md. Besides the curves:
how many evaluations tournament evolution needs to reach random search's final best loss (per
seed, then the mean), and, over --sweep budgets (smallest first), whether a larger budget ever
returns a worse arch: once with independent searches, once as `nas search` runs them, reusing the
scores of the searches before (nas.search.scores; one score book per seed).
`--parts` runs some of strategies / sweep / ray and keeps the others' results from search.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency.hardware import load_hardware  # noqa: E402
from latency.model import latency_model  # noqa: E402
from nas.search import Budget, parse_duration, run_search  # noqa: E402
from nas.api import supernet_evaluator  # noqa: E402
from space import load_space  # noqa: E402
from space.files import atomic_write_text  # noqa: E402

STRATEGIES = ["random", "evolution", "hat", "tpe", "nsga2"]


def hypervolume(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by (loss, latency) points within the reference box (both minimised)."""
    pts = sorted(p for p in points if p[0] < ref[0] and p[1] < ref[1])
    area, best_lat = 0.0, ref[1]
    for loss, lat in pts:  # by increasing loss: each point adds the strip below the best latency so far
        if lat < best_lat:
            area += (ref[0] - loss) * (best_lat - lat)
            best_lat = lat
    return area


def curves(trials: list[dict], budget_s: float, ref: tuple[float, float]) -> tuple[list[float], list[float]]:
    best, hv, pts, cur = [], [], [], float("inf")
    for t in trials:
        if t["loss"] < float("inf") and Budget.of(budget_s).admits(t["latency_s"]):
            cur = min(cur, t["loss"])
            pts.append((t["loss"], t["latency_s"]))
        best.append(cur)
        hv.append(hypervolume(pts, ref))
    return best, hv


def ray_throughput(folder: str, archs, eval_batches: int, rounds: int) -> dict:
    from nas.ray_adapter import RayEvaluatorPool
    from supernet.evaluate import Evaluator
    serial = supernet_evaluator(folder, eval_batches)
    pool = RayEvaluatorPool(folder, eval_batches, 2, lambda f, b, device: supernet_evaluator(f, b, device=device))
    pool.losses(archs[:2])  # warm-up: actors load the supernet
    times = {"serial": [], "ray-2": []}
    chunks = [archs[i::rounds] for i in range(rounds)]
    for r, chunk in enumerate(chunks):
        for name in (("serial", "ray-2") if r % 2 else ("ray-2", "serial")):
            fresh = Evaluator(serial.model, serial.batches) if name == "serial" else None
            t0 = time.perf_counter()
            (fresh.losses if fresh else pool.losses)(chunk)
            times[name].append(len(chunk) / (time.perf_counter() - t0))
    pool.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"archs_per_s": med, "speedup": med["ray-2"] / med["serial"], "rounds": rounds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hardware", default="xeon-2vcpu")
    ap.add_argument("--space", default="lm-shakespeare")
    ap.add_argument("--supernet", default=None, help="default: the supernet shipped with hwnas")
    ap.add_argument("--strategies", nargs="+", default=STRATEGIES, choices=STRATEGIES)
    ap.add_argument("--budget", default="60ms")
    ap.add_argument("--iterations", type=int, default=120)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--eval-batches", type=int, default=2)
    ap.add_argument("--ray-archs", type=int, default=48)
    ap.add_argument("--sweep-seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--sweep", nargs="*", default=["30ms", "40ms", "50ms", "60ms", "75ms", "90ms"],
                    help="budgets searched by tournament evolution (every seed) to check monotonicity")
    ap.add_argument("--sweep-modes", nargs="+", default=["independent", "reused"], choices=["independent", "reused"])
    ap.add_argument("--parts", nargs="+", default=["strategies", "sweep", "ray"],
                    choices=["strategies", "sweep", "ray", "goal"])
    ap.add_argument("--goal", nargs="+", default=["xeon-2vcpu:20ms,35ms,60ms,90ms", "a100:10ms,15ms,20ms,30ms"],
                    help="part goal: HARDWARE:BUDGET,BUDGET... searched with the defaults of `nas search`")
    ap.add_argument("--goal-strategies", nargs="+", default=["random", "evolution", "tpe"])
    ap.add_argument("--goal-seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4],
                    help="part goal: seeds of each strategy (none: only the --reference-mult search)")
    ap.add_argument("--goal-iterations", type=int, default=None,
                    help="part goal: evaluations per search (default: nas search's; fewer for a smoke run)")
    ap.add_argument("--reference-mult", type=int, default=0,
                    help="part goal: also a tournament evolution this many times longer (0: none)")
    ap.add_argument("--reference-options", nargs="*", default=[], metavar="KEY=VALUE",
                    help="part goal: the reference's evolution options (e.g. screen=1: no accuracy-model screening); "
                         "they name its run, so references with other options sit beside it")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's; 1 when two processes share the goal part's --out)")
    ap.add_argument("--out", default="bench/results/search")
    args = ap.parse_args()
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space, hw = load_space(args.space), load_hardware(args.hardware)
    if args.supernet is None:
        from nas.api import shipped_supernet
        args.supernet = str(shipped_supernet(space))
    budget_s = parse_duration(args.budget)
    lat = latency_model(hw, space, space.workload)
    ev = supernet_evaluator(args.supernet, args.eval_batches)  # one cache for every run: same supernet, same data
    space = space.restricted(hw.precisions)

    def latency(archs):
        return [float(s) for s in lat.predict(archs)[0]]

    def bound(archs):
        return [float(s) for s in lat.bound(archs, 0.9)]

    path = out / "search.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.update(latency_source=lat.source)
    for part in args.parts:
        results[f"args_{part}"] = vars(args)  # each part's figures with the command that made them
    results.pop("args", None)
    if "strategies" in args.parts:
        results["budget_s"] = budget_s
        results.update(compare_strategies(args, space, ev, latency, bound, budget_s, hw.name))
    if "sweep" in args.parts:
        if "sweep" in results:  # an earlier version's sweep: independent searches only
            results.setdefault("sweeps", {})["independent"] = {"best": results.pop("sweep"),
                                                               "larger_budget_worse": results.pop("sweep_larger_budget_worse")}
        results.setdefault("sweeps", {}).update(budget_sweep(args, space, ev, latency, bound, hw.name))
    if "goal" in args.parts:
        from bench.search_goal import run_goal
        run_goal(args, out)
        return
    if "ray" in args.parts:
        from space import make_rng
        rng = make_rng(123)
        results["ray"] = ray_throughput(args.supernet, [space.sample(rng) for _ in range(args.ray_archs)],
                                        args.eval_batches, rounds=4)
    atomic_write_text(path, json.dumps(results, indent=2))
    if "strategies" in args.parts:
        summary = results["summary"]
        plot(summary, args, out / "search.png")
        print("| strategy | best loss at end (mean ± sd) | hypervolume at end (mean) | best loss after 40 |")
        print("|---|---|---|---|")
        for s, v in summary.items():
            print(f"| {s} | {np.mean(v['final_best']):.4f} ± {np.std(v['final_best']):.4f} | "
                  f"{np.mean(v['final_hv']) * 1e3:.3f} | {v['best_mean'][min(39, len(v['best_mean']) - 1)]:.4f} |")
        print("evolution reaches random's final best after", json.dumps(results["evolution_reaches_random"]))
    if "ray" in args.parts:
        print(json.dumps(results["ray"], indent=2))
    if "sweep" in args.parts:
        for mode in results["sweeps"]:
            print(f"sweep, {mode} (best loss per seed):", json.dumps(results["sweeps"][mode]["best"]),
                  "larger budget worse:", results["sweeps"][mode]["larger_budget_worse"])


def compare_strategies(args, space, ev, latency, bound, budget_s, hw_name) -> dict:
    strategies = list(dict.fromkeys(["random", "evolution", *args.strategies]))
    runs: dict[str, list[list[dict]]] = {s: [] for s in strategies}
    t0 = time.time()
    for seed in args.seeds:
        for strategy in strategies:
            with tempfile.TemporaryDirectory() as tmp:
                res = run_search(space, strategy, evaluate=ev.losses, latency=latency, bound=bound, budget_s=budget_s,
                                 iterations=args.iterations, batch=8, run_dir=Path(tmp), seed=seed,
                                 options=OPTIONS.get(strategy, {}), hardware=hw_name)
            runs[strategy].append([{"loss": t["loss"], "latency_s": t["latency_bound_s"]} for t in res.trials])
            print(f"seed {seed} {strategy}: best {min(t['loss'] for t in res.trials if Budget.of(budget_s).admits(t['latency_s'])):.4f}",
                  flush=True)
    all_losses = [t["loss"] for rs in runs.values() for r in rs for t in r if t["loss"] < float("inf")]
    ref = (max(all_losses), budget_s)
    summary = {}
    for strategy, rs in runs.items():
        cs = [curves(r, budget_s, ref) for r in rs]
        best = np.array([c[0] for c in cs])
        hv = np.array([c[1] for c in cs])
        summary[strategy] = {"best_mean": best.mean(0).tolist(), "hv_mean": hv.mean(0).tolist(),
                             "final_best": [float(b[-1]) for b in best], "final_hv": [float(h[-1]) for h in hv]}
    # evaluations tournament evolution needs to reach random search's final best (per seed)
    reach = []
    for r_rand, r_evo in zip(runs["random"], runs["evolution"]):
        target = curves(r_rand, budget_s, ref)[0][-1]
        best = curves(r_evo, budget_s, ref)[0]
        reach.append(next((i + 1 for i, b in enumerate(best) if b <= target), None))
    done = [r for r in reach if r is not None]
    reach_summary = {"per_seed": reach, "mean": float(np.mean(done)) if done else None,
                     "fraction_of_budget": float(np.mean(done)) / args.iterations if done else None}
    return {"reference_point": ref, "summary": summary, "search_seconds": time.time() - t0,
            "evolution_reaches_random": reach_summary}


def budget_sweep(args, space, ev, latency, bound, hw_name) -> dict:
    """Tournament evolution at every --sweep budget, smallest first, per seed: independent searches,
    then searches that reuse the scores of the ones before (as `nas search` does by default)."""
    from nas.search import REUSED
    from nas.search.scores import ScoreBook
    budgets = sorted(args.sweep, key=parse_duration)
    sweeps = {}
    for mode in args.sweep_modes:
        best = {b: [] for b in budgets}
        picked = {b: [] for b in budgets}
        for seed in args.sweep_seeds:
            with tempfile.TemporaryDirectory() as tmp:
                book = ScoreBook(Path(tmp) / "scores.jsonl")
                for b in budgets:
                    res = run_search(space, "evolution", evaluate=book.wrap(ev.losses) if mode == "reused" else ev.losses,
                                     latency=latency, bound=bound, budget_s=parse_duration(b), iterations=args.iterations,
                                     batch=8, run_dir=Path(tmp) / b, seed=seed, options=OPTIONS["evolution"],
                                     hardware=hw_name, known=book.items() if mode == "reused" else None)
                    best[b].append(res.best["loss"])
                    picked[b].append({"arch_id": res.best["arch_id"], "latency_s": res.best["latency_s"],
                                      "bound_s": res.best["latency_bound_s"],
                                      "reused": res.best["strategy"] == REUSED})
            print(f"sweep {mode} seed {seed}: " + ", ".join(f"{b} {best[b][-1]:.4f}" for b in budgets), flush=True)
        worse = [(a, b, s) for a, b in zip(budgets, budgets[1:]) for s, (x, y) in
                 enumerate(zip(best[a], best[b])) if y > x + 1e-12]
        sweeps[mode] = {"best": best, "picked": picked, "larger_budget_worse": worse}
    return sweeps


OPTIONS = {"evolution": {"population": 30, "sample_size": 8},
           "hat": {"population": 30, "parents": 6, "mutations": 12, "crossovers": 12},
           "nsga2": {"population_size": 24}}


def plot(summary, args, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for s, v in summary.items():
        x = np.arange(1, len(v["best_mean"]) + 1)
        axes[0].plot(x, v["best_mean"], label=s)
        axes[1].plot(x, np.array(v["hv_mean"]) * 1e3, label=s)
    axes[0].set_ylabel(f"best loss within {args.budget} (mean of {len(args.seeds)} seeds)")
    axes[1].set_ylabel("hypervolume (loss x ms)")
    for ax in axes:
        ax.set_xlabel("archs evaluated")
        ax.legend()
    fig.suptitle(f"{args.space} on {args.hardware}, budget {args.budget}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
