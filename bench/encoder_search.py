"""The search on the encoder-only task: which attention types the answer uses per layer, against
the best all-softmax, all-Linformer and all-Fastformer archs of the same budget, the uniform arch
grown to the budget, and the two baselines that are not Transformers (the majority class, a char
n-gram logistic regression).

Per budget: `nas search --space folio-genre` over the whole space ("mixed") and the same search
restricted to one attention type (`--attention softmax`, `linformer`, `fastformer`); beside them the
trivial rule ("uniform"): per embed x depth x attention type the largest uniform arch whose latency
bound fits, the best of those on validation. Every answer is then scored with inherited weights on
every window of the test split (accuracy and loss, nats per passage), and timed with a stopwatch on
this machine, all answers of one budget interleaved (raw wall clock, medians of one forward pass of
the workload). Selection used validation; the table is test.

    python bench/encoder_search.py --supernet DIR --hardware epyc-2vcpu --budgets 15ms 40ms \\
        --out bench/results/encoder_search
Results land in encoder_search.json as they are made (a killed run resumes), plus encoder_search.png.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from space import Arch, load_space  # noqa: E402
from space.display import arch_summary  # noqa: E402
from space.files import atomic_write_text  # noqa: E402

KINDS = ("mixed", "softmax", "linformer", "fastformer", "uniform")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hardware", default="epyc-2vcpu")
    ap.add_argument("--budgets", nargs="+", default=["15ms", "40ms"])
    ap.add_argument("--space", default="folio-genre")
    ap.add_argument("--supernet", required=True)
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--iterations", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=9, help="interleaved timing rounds per answer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results/encoder_search")
    args = ap.parse_args()
    from nas import api
    from nas.search.budget import parse_duration
    space = load_space(args.space)
    from space.errors import UserError
    try:  # bad input first: one line, before any search
        for b in args.budgets:
            parse_duration(b)
    except UserError as e:
        raise SystemExit(str(e)) from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "encoder_search.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.update(hardware=args.hardware, space=space.name, supernet=str(args.supernet), iterations=args.iterations)
    rows = results.setdefault("rows", {})

    def save() -> None:
        atomic_write_text(path, json.dumps(results, indent=1))
    if "baselines" not in results:
        test = api.evaluate(args.supernet, space.smallest(), batches=10 ** 6, split="test", progress=False)
        results["baselines"] = [{"name": b.name, "accuracy": b.accuracy, "loss": b.loss} for b in test.baselines]
        results["test_texts"] = test.tokens
        save()
    t0 = time.perf_counter()
    jobs = [(b, k) for b in args.budgets for k in args.kinds]
    for n, (budget, kind) in enumerate(jobs):
        key = f"{budget}/{kind}"
        if key in rows:
            continue
        run_dir = out / "runs" / f"{budget}-{kind}"
        if kind == "uniform":
            arch, val, predicted, bound = grown_uniform(api, space, args, budget, run_dir)
        else:
            run = api.search(args.hardware, budget, space=space, supernet=args.supernet,
                             attention=None if kind == "mixed" else kind, iterations=args.iterations,
                             seed=args.seed, out=run_dir, progress=True)
            best = run.best
            arch = Arch.from_json(best["arch"]) if best else None
            val, predicted, bound = (best["loss"], best["latency_s"], best["latency_bound_s"]) if best else (None,) * 3
        if arch is None:
            rows[key] = {"budget": budget, "kind": kind, "arch": None}
            save()
            continue
        test = api.evaluate(args.supernet, arch, batches=10 ** 6, split="test", progress=False)
        s = test.scores[0]
        rows[key] = {"budget": budget, "kind": kind, "arch": arch.to_json(), "arch_id": arch.id,
                     "layout": arch_summary(arch), "types": [layer.attn for layer in arch.encoder.layers],
                     "val_loss": val, "test_loss": s.loss, "test_accuracy": s.translation["accuracy %"] / 100,
                     "test_texts": test.tokens, "predicted_s": predicted, "bound_s": bound, "params": s.params}
        save()
        done = time.perf_counter() - t0
        print(f"[{n + 1}/{len(jobs)}] {key}: {arch_summary(arch)}  test accuracy {s.translation['accuracy %']:.1f}%  "
              f"predicted {predicted * 1e3:.1f} ms  ({done / 60:.0f} min so far)", flush=True)
    time_answers(results, args)
    save()
    plot(results, out / "encoder_search.png")
    table(results)


def grown_uniform(api, space, args, budget: str, run_dir: Path):
    """The trivial rule: per embed x depth x attention type the largest uniform arch whose latency
    bound the search admits, the best on the search's final validation batches."""
    from nas.search.seeding import largest_uniform
    plan = api.plan_search(args.hardware, budget, space=space, supernet=args.supernet, out=run_dir)
    grown = largest_uniform(plan.space, lambda archs: [plan.budget.admits(b) for b in plan.bound(list(archs))],
                            skip=False)
    if not grown:
        return None, None, None, None
    ev = api.supernet_evaluator(args.supernet, plan.fidelity.final_batches, spread=True)
    losses = ev.losses(grown, plan.fidelity.final_batches)
    i = min(range(len(grown)), key=lambda k: (losses[k], grown[k].id))
    arch = grown[i]
    return arch, losses[i], float(plan.latency([arch])[0]), float(plan.bound([arch])[0])


def time_answers(results: dict, args) -> None:
    """The stopwatch: every answer of a budget timed together, interleaved, on this machine."""
    from latency.hardware import load_hardware
    from latency.profile import time_group
    from latency.protocol import TimingProtocol
    from latency.runner import cpu_identity
    space = load_space(args.space)
    hw = load_hardware(args.hardware)
    for budget in args.budgets:
        todo = [r for r in results["rows"].values() if r["budget"] == budget and r.get("arch")]
        if all("measured_s" in r for r in todo):
            continue
        uniq = list({a.id: a for a in (Arch.from_json(r["arch"]) for r in todo)}.values())
        times, _ = time_group(uniq, space.workload, hw.device, TimingProtocol(rounds=args.rounds), threads=hw.threads)
        by_id = {a.id: i for i, a in enumerate(uniq)}
        for r in todo:
            r["measured_s"] = times[by_id[r["arch_id"]]].median
        results["timed_on"] = cpu_identity()
        results["threads"] = hw.threads


def table(results: dict) -> None:
    rows = sorted(results["rows"].values(), key=lambda r: (r["budget"], KINDS.index(r["kind"])))
    print(f"test split: {results['test_texts']:,} passages")
    print("| budget | kind | arch | attention per layer | test accuracy | test loss | predicted | measured | params |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if not r.get("arch"):
            print(f"| {r['budget']} | {r['kind']} | nothing within the budget | | | | | | |")
            continue
        meas = f"{r['measured_s'] * 1e3:.1f} ms" if "measured_s" in r else "-"
        print(f"| {r['budget']} | {r['kind']} | `{r['layout']}` | {', '.join(r['types'])} | "
              f"{100 * r['test_accuracy']:.1f}% | {r['test_loss']:.4f} | {r['predicted_s'] * 1e3:.1f} ms | {meas} | "
              f"{r['params'] / 1e6:.2f}M |")
    for b in results["baselines"]:
        print(f"| - | {b['name']} | - | - | {100 * b['accuracy']:.1f}% | {b['loss']:.4f} | - | - | - |")


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for kind in KINDS:
        pts = [r for r in results["rows"].values() if r["kind"] == kind and r.get("arch")]
        if pts:
            ax.plot([r.get("measured_s", r["predicted_s"]) * 1e3 for r in pts], [100 * r["test_accuracy"] for r in pts],
                    "o", label=kind, markersize=7)
    for b, style in zip(results["baselines"], (":", "--")):
        ax.axhline(100 * b["accuracy"], linestyle=style, color="grey", label=b["name"])
    ax.set_xlabel("latency, ms (measured on this machine; else predicted)")
    ax.set_ylabel("test accuracy, %")
    ax.legend(fontsize=7)
    ax.set_title(f"{results['space']} on {results['hardware']}: searched vs uniform attention", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
