"""bench/search.py --parts goal: does the search answer the most accurate arch within the budget?

Per hardware and budget: every strategy of --goal-strategies, per seed, run as `nas search` runs it
(its default iterations, options and fidelity: cheap loss, hurdle, final re-score on 64 validation
batches), with the dataset-scale latency predictions (no calibration: the figures do not depend on
the machine's speed today). Beside them, the trivial baseline: the uniform arch grown to the budget
(every layer alike, the largest by parameters that fits for each embed x depth x precision x
attention type), all of them scored on the hurdle's batches and the best 16 on the final set.
Each answer's loss is on the final validation set (the selection split), and again on the same
number of test batches for the final table. Results land in goal.json as they are made (a killed run
resumes; one score book per supernet, goal_scores-<digest>.jsonl, makes no arch scored twice at a
fidelity), plus goal.png. Several processes may share one --out (e.g. one per strategy, each with one
thread): each merges its results into goal.json as it writes.

    python bench/search.py --parts goal --goal xeon-2vcpu:60ms a100:20ms --goal-seeds 0 1
"""
from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
from pathlib import Path

from latency.hardware import load_hardware
from latency.model import latency_model
from nas.api import (DEFAULT_EVAL_BATCHES, DEFAULT_FINAL_BATCHES, DEFAULT_FINAL_TOP, DEFAULT_HURDLE_BATCHES,
                     DEFAULT_ITERATIONS, shipped_supernet, supernet_evaluator)
from nas.search import Budget, Fidelity, InfeasibleBudget, parse_duration, run_search
from nas.search.scores import ScoreBook, file_digest
from nas.search.seeding import largest_uniform
from space import Arch, load_space
from space.errors import UserError
from space.files import atomic_write_text
from supernet.checkpoint import checkpoint_path

UNIFORM_FINAL = 16


def uniform_baseline(space, bound, budget_s, score) -> dict | None:
    """The best uniform arch grown to the budget: per group, the largest feasible one (None: no
    uniform arch fits the budget)."""
    budget = Budget.of(budget_s)
    grown = largest_uniform(space, lambda archs: [budget.admits(b) for b in bound(list(archs))], skip=False)
    if not grown:
        return None
    mid = score(grown, DEFAULT_HURDLE_BATCHES)
    top = [a for _, a in sorted(zip(mid, grown), key=lambda p: (p[0], p[1].id))[:UNIFORM_FINAL]]
    final = score(top, DEFAULT_FINAL_BATCHES)
    i = min(range(len(top)), key=lambda k: (final[k], top[k].id))
    return {"arch_id": top[i].id, "arch": top[i].to_json(), "val": final[i], "grown": len(grown),
            "bound_s": float(bound([top[i]])[0])}


def _merged(path: Path, results: dict) -> dict:
    """`results` with what goal.json holds now added in place (another process may have written
    cells or runs since): ours win where both have one."""
    disk = json.loads(path.read_text()) if path.is_file() else {}
    for key, value in disk.items():
        mine = results.get(key)
        if isinstance(value, dict) and "runs" in value and isinstance(mine, dict):
            for name, run in value["runs"].items():
                mine["runs"].setdefault(name, run)
            for k, v in value.items():
                mine.setdefault(k, v)
        else:
            results.setdefault(key, value)
    return results


def run_goal(args, out: Path) -> None:
    path = out / "goal.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    full = load_space(args.space)
    folder = args.supernet or str(shipped_supernet(full))
    digest = file_digest(checkpoint_path(folder))
    if results.get("supernet", digest) != digest:
        raise SystemExit(f"{path}: holds results of another supernet (digest {results['supernet'][:12]}, "
                         f"not {digest[:12]}); give another --out or delete it")
    results["supernet"] = digest
    from space.options import parse_pairs  # as `nas search --option` reads them
    try:
        ref_options = parse_pairs(tuple(getattr(args, "reference_options", None) or ()),
                                  flag_name="--reference-options") or {}
    except UserError as e:
        raise SystemExit(str(e))

    def save() -> None:
        atomic_write_text(path, json.dumps(_merged(path, results), indent=2))
    fid = Fidelity(batches=DEFAULT_EVAL_BATCHES, hurdle_batches=DEFAULT_HURDLE_BATCHES,
                   final_batches=DEFAULT_FINAL_BATCHES, final_top=DEFAULT_FINAL_TOP)
    ev = supernet_evaluator(folder, fid.final_batches, spread=True)
    test = supernet_evaluator(folder, fid.final_batches, split="test", spread=True)
    with tempfile.TemporaryDirectory() as tmp:
        book = ScoreBook(Path(out) / f"goal_scores-{digest[:12]}.jsonl")  # a resumed run rescores nothing
        score = book.wrap(ev.losses)
        results["tokens"] = {"val_final": ev.tokens_of(fid.final_batches), "test_final": test.tokens_of(fid.final_batches)}
        results["fidelity"] = {**fid.to_dict(), "final_set": "the best of each structure first (fidelity.final_set)"}
        for spec in args.goal:
            hw_name, _, budgets = spec.partition(":")
            hw = load_hardware(hw_name)
            space = full.restricted(hw.precisions)
            model = latency_model(hw, full, full.workload)

            def latency(archs):
                return [float(v) for v in model.predict(archs)[0]]

            def bound(archs):
                return [float(v) for v in model.bound(archs, 0.9)]
            for budget in budgets.split(","):
                key = f"{hw_name}/{budget}"
                cell = results.setdefault(key, {"runs": {}})
                budget_s = parse_duration(budget)
                if "infeasible" in cell:
                    continue
                if "uniform" not in cell:
                    t0 = time.time()
                    base = uniform_baseline(space, bound, budget_s, score)
                    if base is None:  # the search refuses such a budget too (check_reachable)
                        smallest = min(bound([space.smallest(), *[space.sample(i) for i in range(300)]]))
                        cell["infeasible"] = (f"no arch fits: the smallest latency bound (90% confidence) among "
                                              f"the smallest arch and 300 drawn ones is {smallest * 1e3:.2f} ms")
                        save()
                        print(f"{key}: {cell['infeasible']}", flush=True)
                        continue
                    cell["uniform"] = base
                    cell["uniform"]["test"] = test.loss(Arch.from_json(cell["uniform"]["arch"]), fid.final_batches)
                    cell["uniform"]["seconds"] = time.time() - t0
                    save()
                    print(f"{key} uniform: {cell['uniform']['val']:.4f}", flush=True)
                per = getattr(args, "goal_iterations", None) or DEFAULT_ITERATIONS
                plans = [(s, seed, per, {}) for seed in args.goal_seeds for s in args.goal_strategies]
                if args.reference_mult:
                    plans.append(("evolution", 0, per * args.reference_mult, ref_options))
                for strategy, seed, iterations, options in plans:
                    name = (f"{strategy}/s{seed}" + ("" if iterations == per else f"/x{iterations}")
                            + "".join(f"-{k}{v}" for k, v in sorted(options.items())))
                    if name in cell["runs"]:
                        continue
                    t0 = time.time()
                    try:
                        res = run_search(space, strategy, evaluate=score, latency=latency, bound=bound, budget_s=budget_s,
                                         iterations=iterations, batch=8, run_dir=Path(tmp) / key / name, seed=seed,
                                         options=options or None,
                                         hardware=hw_name, fidelity=fid, tokens=ev.tokens_of)
                    except InfeasibleBudget as e:  # e.g. random search finds too few archs within 20 ms
                        cell["runs"][name] = {"refused": str(e), "seconds": time.time() - t0}
                        save()
                        print(f"{key} {name}: refused: {e}", flush=True)
                        continue
                    best = res.best
                    arch = Arch.from_json(best["arch"])
                    cell["runs"][name] = {"arch_id": best["arch_id"], "arch": best["arch"], "val": best["loss"],
                                          "batches": best.get("batches"), "bound_s": best["latency_bound_s"],
                                          "budget_used": best["latency_bound_s"] / budget_s,
                                          "test": test.loss(arch, fid.final_batches), "seconds": time.time() - t0,
                                          "curve": _curve(res.trials, budget_s)}
                    save()
                    print(f"{key} {name}: {best['loss']:.4f} (uniform {cell['uniform']['val']:.4f}), "
                          f"{best['latency_bound_s'] / budget_s:.0%} of the budget, {time.time() - t0:.0f} s", flush=True)
    results = _merged(path, results)
    summarise(results)
    atomic_write_text(path, json.dumps(results, indent=2))
    plot_goal(results, out / "goal.png")


def _curve(trials, budget_s: float) -> list[float]:
    """Best loss the search held after each evaluation (its own trials, in order)."""
    best, out = math.inf, []
    for t in trials:
        if math.isfinite(t["search_loss"]) and Budget.of(budget_s).admits(t["latency_bound_s"]):
            best = min(best, t["search_loss"])
        out.append(best)
    return out


def summarise(results: dict) -> None:
    print("| hardware / budget | uniform grown (val) | strategy | answer val (mean of seeds) | worst seed | "
          "never worse than uniform | test (mean) | uniform test | budget used |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key, cell in results.items():
        if isinstance(cell, dict) and "infeasible" in cell:
            print(f"| {key} | {cell['infeasible']} | | | | | | | |")
            continue
        if not isinstance(cell, dict) or "uniform" not in cell:
            continue
        u = cell["uniform"]
        by: dict[str, list[dict]] = {}
        for name, r in cell["runs"].items():
            by.setdefault(name.split("/")[0] + ("" if name.count("/") == 1 else " (ref)"), []).append(r)
        summary = {}
        for strategy, all_runs in by.items():
            rs = [r for r in all_runs if "refused" not in r]  # a refused run answers nothing: never "not worse"
            if not rs:
                summary[strategy] = {"seeds": len(all_runs), "refused": len(all_runs), "not_worse": 0}
                print(f"| {key} | {u['val']:.4f} | {strategy} | refused ({len(all_runs)} seeds) | | 0/{len(all_runs)} | "
                      f"| {u['test']:.4f} | |")
                continue
            vals = [r["val"] for r in rs]
            summary[strategy] = {"val_mean": statistics.mean(vals), "val_worst": max(vals), "seeds": len(all_runs),
                                 "refused": len(all_runs) - len(rs),
                                 "not_worse": sum(v <= u["val"] + 1e-9 for v in vals),
                                 "test_mean": statistics.mean(r["test"] for r in rs),
                                 "budget_used_mean": statistics.mean(r["budget_used"] for r in rs)}
            s = summary[strategy]
            refused = f" ({s['refused']} refused)" if s["refused"] else ""
            print(f"| {key} | {u['val']:.4f} | {strategy} | {s['val_mean']:.4f} | {s['val_worst']:.4f} | "
                  f"{s['not_worse']}/{s['seeds']}{refused} | {s['test_mean']:.4f} | {u['test']:.4f} | "
                  f"{s['budget_used_mean']:.0%} |")
        ref = summary.get("evolution (ref)")
        if ref is not None and "val_mean" in ref:  # several references (e.g. with and without screening): the best
            ref["val_best"] = min(r["val"] for n, r in cell["runs"].items() if n.count("/") > 1 and "refused" not in r)
        for strategy, s in summary.items():
            if ref is not None and "val_best" in ref and "val_mean" in s and strategy != "evolution (ref)":
                s["gap_to_reference"] = s["val_mean"] - ref["val_best"]
        cell["summary"] = summary


def plot_goal(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cells = [(k, c) for k, c in results.items() if isinstance(c, dict) and c.get("runs") and "uniform" in c]
    if not cells:
        return
    fig, axes = plt.subplots(1, len(cells), figsize=(4.2 * len(cells), 3.6), squeeze=False)
    for ax, (key, cell) in zip(axes[0], cells):
        by: dict[str, list[dict]] = {}
        for name, r in cell["runs"].items():
            if "refused" not in r:
                by.setdefault(name.split("/")[0] + ("" if name.count("/") == 1 else " (ref)"), []).append(r)
        for strategy, rs in by.items():
            curves = [r["curve"] for r in rs]
            n = min(len(c) for c in curves)
            mean = [statistics.mean(c[i] for c in curves) for i in range(n) if all(math.isfinite(c[i]) for c in curves)]
            ax.plot(range(n - len(mean) + 1, n + 1), mean, label=f"{strategy} (search's own loss)")
            ax.axhline(statistics.mean(r["val"] for r in rs), ls=":", c=ax.lines[-1].get_color(),
                       label=f"{strategy} answer, final set")
        ax.axhline(cell["uniform"]["val"], c="k", ls="--", label="uniform grown to budget, final set")
        ax.set_xscale("log")  # the reference runs 10x longer
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("archs evaluated")
        ax.set_ylabel("validation loss (nats/byte)")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
