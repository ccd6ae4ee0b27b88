"""The result no anchor has: at a long workload, the searched arch (per-layer attention types)
against the best arch of each uniform kind (every layer softmax, every layer window, every layer
linear) within the same latency budget, and how the answer changes with the context.

Per context L (one budget for all): `nas search --space lm-shakespeare-long --workload
batch=1,len=L,gen=G --eval-context L` over the whole space ("mixed"), and the same search with
`--attention softmax`, `--attention window` and `--attention linear` (the best of each kind, found
the same way). Beside them the trivial baseline ("uniform"): the uniform arch (every layer alike)
grown to the budget for each embed x depth x attention type x precision, the best of those on
validation at context L (8 batches for all, then `nas search`'s default final set of 64 batches for
the best 16: chosen at least as carefully as the searches' answers). Every answer is then scored on the test split at context L (inherited weights,
`nas evaluate --split test --context L`), its memory predicted for the workload, and its latency
timed with a stopwatch on this machine: all answers of one L interleaved, raw wall clock, medians
(total, and the prefill alone: time to first token). Selection used validation; the table is test.

    python bench/long_search.py --hardware xeon-2vcpu --budget 300ms --contexts 256 1024 2048 \\
        --out bench/results/long_search              # a quiet machine: the searches calibrate and time
Results land in long_search.json as they are made (a killed run resumes: finished searches are kept,
and `nas search` resumes an unfinished one in its run folder), plus long_search.png; the table goes
to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from space import Arch, Workload, load_space  # noqa: E402
from space.display import arch_summary  # noqa: E402
from space.files import atomic_write_text  # noqa: E402
from space.memory import inference_memory  # noqa: E402

KINDS = ("mixed", "softmax", "window", "linear", "uniform")
UNIFORM_FINAL = 16  # grown uniform archs re-scored on the final validation batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hardware", default="xeon-2vcpu")
    ap.add_argument("--budget", default="300ms")
    ap.add_argument("--space", default="lm-shakespeare-long")
    ap.add_argument("--supernet", default=None, help="default: the one shipped for the space")
    ap.add_argument("--contexts", type=int, nargs="+", default=[256, 1024, 2048])
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--population", type=int, default=None, help="the strategy's population (default: its own)")
    ap.add_argument("--final-batches", type=int, default=16, help="validation batches of the final re-score")
    ap.add_argument("--test-batches", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds per answer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the scoring (default: torch's)")
    ap.add_argument("--out", default="bench/results/long_search")
    args = ap.parse_args()
    import torch

    from nas import api
    from nas.api._supernet import shipped_supernet
    if args.threads:
        torch.set_num_threads(args.threads)
    space = load_space(args.space)
    supernet = Path(args.supernet) if args.supernet else shipped_supernet(space)
    if supernet is None:
        raise SystemExit(f"no supernet shipped for {space.name}; give --supernet DIR")
    for L in args.contexts:  # bad input first: one line, before any search
        if L + args.gen > space.max_len:
            raise SystemExit(f"--contexts {L}: {L} + {args.gen} generated exceeds the space's max_len {space.max_len}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "long_search.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    settings = dict(hardware=args.hardware, budget=args.budget, space=space.name, supernet=str(supernet),
                    gen=args.gen, iterations=args.iterations, population=args.population)
    changed = [k for k, v in settings.items() if k in results and results[k] != v]
    if changed:
        raise SystemExit(f"{path}: holds results for other settings ({', '.join(f'{k} {results[k]}' for k in changed)}); "
                         f"give another --out or the same settings to resume")
    results.update(settings)
    rows = results.setdefault("rows", {})

    def save() -> None:
        atomic_write_text(path, json.dumps(results, indent=1))
    t0 = time.perf_counter()
    jobs = [(L, k) for L in args.contexts for k in args.kinds]
    for n, (L, kind) in enumerate(jobs):
        key = f"{L}/{kind}"
        if key in rows:
            continue
        w = f"batch=1,len={L},gen={args.gen}"
        if kind == "uniform":
            rows[key] = grown_uniform(api, space, supernet, args, L, w, out / "runs" / f"{L}-uniform")
            save()
            continue
        run = api.search(args.hardware, args.budget, space=space, supernet=supernet, workload=w, eval_context=L,
                         attention=None if kind == "mixed" else kind, iterations=args.iterations,
                         population=args.population,
                         final_batches=args.final_batches, seed=args.seed, out=out / "runs" / f"{L}-{kind}",
                         progress=True)
        best = run.best
        if best is None:
            rows[key] = {"context": L, "kind": kind, "arch": None}
            save()
            continue
        arch = Arch.from_json(best["arch"])
        test = api.evaluate(supernet, arch, batches=args.test_batches, split="test", context=L, progress=False)
        mem = inference_memory(arch, Workload(1, L, args.gen))
        rows[key] = {"context": L, "kind": kind, "arch": best["arch"], "arch_id": arch.id,
                     "layout": arch_summary(arch), "softmax_layers": [i for i, layer in enumerate(arch.decoder.layers)
                                                                      if layer.attn == "softmax"],
                     "val_loss": best["loss"], "val_tokens": best.get("tokens"), "test_loss": test.scores[0].loss,
                     "test_tokens": test.tokens, "predicted_s": best["latency_s"], "bound_s": best["latency_bound_s"],
                     "params": test.scores[0].params, "memory_bytes": mem.total, "state_bytes": mem.state}
        save()
        done = time.perf_counter() - t0
        print(f"[{n + 1}/{len(jobs)}] {key}: {arch_summary(arch)}  test {rows[key]['test_loss']:.4f}  "
              f"predicted {best['latency_s'] * 1e3:.1f} ms  ({done / 60:.0f} min so far, about "
              f"{done / (n + 1) * (len(jobs) - n - 1) / 60:.0f} min left)", flush=True)
    time_answers(results, args)
    save()
    plot(results, out / "long_search.png")
    table(results)


def grown_uniform(api, space, supernet: Path, args, L: int, w: str, run_dir: Path) -> dict:
    """The trivial baseline at context L: per group (embed x depth x attention type x precision) the
    largest uniform arch whose latency bound the search would admit, best on validation at L."""
    from nas.search.seeding import largest_uniform
    plan = api.plan_search(args.hardware, args.budget, space=space, supernet=supernet, workload=w, eval_context=L,
                           out=run_dir)
    grown = largest_uniform(plan.space, lambda archs: [plan.budget.admits(b) for b in plan.bound(list(archs))],
                            skip=False)
    if not grown:
        return {"context": L, "kind": "uniform", "arch": None}
    fid = plan.fidelity
    ev = api.supernet_evaluator(supernet, fid.final_batches, spread=True, context=L)
    mid = ev.losses(grown, fid.hurdle_batches)
    top = [a for _, a in sorted(zip(mid, grown), key=lambda p: (p[0], p[1].id))[:UNIFORM_FINAL]]
    final = ev.losses(top, fid.final_batches)
    i = min(range(len(top)), key=lambda k: (final[k], top[k].id))
    arch = top[i]
    test = api.evaluate(supernet, arch, batches=args.test_batches, split="test", context=L, progress=False)
    mem = inference_memory(arch, Workload(1, L, args.gen))
    print(f"uniform at {L}: {len(grown)} grown archs, best {arch_summary(arch)}", flush=True)
    return {"context": L, "kind": "uniform", "arch": arch.to_json(), "arch_id": arch.id, "layout": arch_summary(arch),
            "softmax_layers": [j for j, layer in enumerate(arch.decoder.layers) if layer.attn == "softmax"],
            "val_loss": final[i], "val_tokens": ev.tokens_of(fid.final_batches), "test_loss": test.scores[0].loss,
            "test_tokens": test.tokens, "predicted_s": float(plan.latency([arch])[0]),
            "bound_s": float(plan.bound([arch])[0]), "params": test.scores[0].params, "memory_bytes": mem.total,
            "state_bytes": mem.state, "grown": len(grown)}


def time_answers(results: dict, args) -> None:
    """The stopwatch: every answer of a context timed together, interleaved, on this machine."""
    from latency.hardware import load_hardware
    from latency.profile import time_group
    from latency.protocol import TimingProtocol
    from latency.runner import cpu_identity
    hw = load_hardware(args.hardware)
    threads = hw.threads
    for L in args.contexts:
        todo = [r for r in results["rows"].values() if r["context"] == L and r.get("arch")]
        if all("measured_s" in r for r in todo):
            continue  # a new answer has every answer of its context timed again, beside it
        archs = [Arch.from_json(r["arch"]) for r in todo]
        uniq = list({a.id: a for a in archs}.values())
        proto = TimingProtocol(rounds=args.rounds)
        whole, _ = time_group(uniq, Workload(1, L, args.gen), hw.device, proto, threads=threads)
        first, _ = time_group(uniq, Workload(1, L, args.gen), hw.device, proto, threads=threads, prefill_only=True)
        by_id = {a.id: i for i, a in enumerate(uniq)}
        for r in todo:
            i = by_id[r["arch_id"]]
            r["measured_s"] = whole[i].median
            r["measured_prefill_s"] = first[i].median
        results["timed_on"] = cpu_identity()
        results["threads"] = threads


def table(results: dict) -> None:
    rows = sorted(results["rows"].values(), key=lambda r: (r["context"], KINDS.index(r["kind"])))
    print("| context | kind | arch | softmax layers | test loss | predicted | measured | first token | memory |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if not r.get("arch"):
            print(f"| {r['context']} | {r['kind']} | nothing within the budget | | | | | | |")
            continue
        meas = f"{r['measured_s'] * 1e3:.0f} ms" if "measured_s" in r else "-"
        first = f"{r['measured_prefill_s'] * 1e3:.0f} ms" if "measured_prefill_s" in r else "-"
        print(f"| {r['context']} | {r['kind']} | `{r['layout']}` | {r['softmax_layers'] or 'none'} | "
              f"{r['test_loss']:.4f} | {r['predicted_s'] * 1e3:.0f} ms | {meas} | {first} | "
              f"{r['memory_bytes'] / 1e6:.1f} MB |")


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for kind in KINDS:
        pts = sorted((r["context"], r) for r in results["rows"].values() if r["kind"] == kind and r.get("arch"))
        if not pts:
            continue
        a1.plot([c for c, _ in pts], [r["test_loss"] for _, r in pts], "o-", label=kind)
        a2.plot([c for c, _ in pts], [r.get("measured_s", r["predicted_s"]) * 1e3 for _, r in pts], "o-", label=kind)
    for ax, label in ((a1, "test loss at the context (nats/byte)"), (a2, "latency, ms (measured; else predicted)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("prompt length L (then gen tokens)")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle(f"{results['space']} on {results['hardware']}, budget {results['budget']}: the searched arch "
                 f"against the best of each uniform kind", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
