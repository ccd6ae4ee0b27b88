"""Does the supernet rank archs as training them alone would? And what does weight sharing cost?

1. Trains two supernets on the embedded corpus with equal compute: the sandwich rule with in-place
   distillation (largest + smallest + 2 random archs per step), and HAT's uniform sampling (one
   random arch per step, 4x the steps: the same number of arch updates).
2. Picks archs spanning the attention types (every layer softmax, every layer window, every layer
   linear, and mixed), trains each alone from scratch for a short equal budget, and compares the
   validation loss of each arch with inherited weights to its stand-alone loss: Kendall tau and
   Spearman rho.
3. Throughput: one training step of the largest arch through the supernet (slicing) against the
   same arch as a plain fixed Transformer, interleaved rounds, medians.

    python bench/supernet_ranking.py --out bench/results/ranking     # about an hour on 2 cores
Results: ranking.json, ranking.png in --out; figures go to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from space import Arch, Layer, Stack, analytic_cost, load_space  # noqa: E402
from supernet.corpus import LMBatches, load_text_corpus  # noqa: E402
from supernet.evaluate import Evaluator  # noqa: E402
from supernet.subnet import SubTransformer, extract  # noqa: E402
from supernet.checkpoint import load_supernet  # noqa: E402
from supernet.train import TrainConfig, lm_loss, train_fixed, train_supernet  # noqa: E402


def pick_archs(space, n_per_kind: int, seed: int) -> list[tuple[str, Arch]]:
    """n archs whose every layer is softmax, window, linear, and n mixed ones."""
    rng = random.Random(seed)
    out, seen = [], set()
    for kind in ("softmax", "window", "linear", "mixed"):
        got = 0
        while got < n_per_kind:
            a = space.sample(rng)
            if kind != "mixed":
                params = dict(space.decoder.attention)[kind]
                layers = tuple(Layer(kind, l.heads, l.kv_heads, l.ffn, **({"window": rng.choice(params)} if params else {}))
                               for l in a.decoder.layers)
                a = Arch(a.kind, a.head_dim, a.vocab_size, a.max_len, decoder=Stack(a.decoder.embed, layers))
            elif len({l.attn for l in a.decoder.layers}) < 2:
                continue
            if a.id not in seen:
                seen.add(a.id)
                out.append((kind, a))
                got += 1
    return out


def rank_stats(x: list[float], y: list[float]) -> dict[str, float]:
    from scipy.stats import kendalltau, spearmanr
    return {"kendall_tau": float(kendalltau(x, y).statistic), "spearman_rho": float(spearmanr(x, y).statistic)}


def throughput(space, batches, cfg: TrainConfig, rounds: int, steps: int) -> dict[str, float]:
    """Tokens/s of a training step of the largest arch: through the supernet vs a plain model."""
    from supernet.model import SuperTransformer
    sup = SuperTransformer(space)
    plain = extract(sup, space.largest())
    arch = space.largest()
    gen = torch.Generator().manual_seed(0)
    opts = {"supernet": torch.optim.AdamW(sup.parameters(), lr=1e-4), "plain": torch.optim.AdamW(plain.parameters(), lr=1e-4)}
    runs = {"supernet": lambda x: sup(x, arch), "plain": lambda x: plain(x)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(rounds + 1):  # round 0 is warm-up
        for name in (list(runs) if r % 2 else list(runs)[::-1]):  # interleaved, alternating order
            x, y = batches.sample(cfg.batch_size, gen)
            t0 = time.perf_counter()
            for _ in range(steps):
                opts[name].zero_grad(set_to_none=True)
                lm_loss(runs[name](x), y).backward()
                opts[name].step()
            if r:
                times[name].append(steps * cfg.batch_size * cfg.seq_len / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in times.items()}
    spread = {k: (max(v) - min(v)) / statistics.median(v) for k, v in times.items()}
    return {"tokens_per_s": med, "spread": spread, "ratio_supernet_over_plain": med["supernet"] / med["plain"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="lm-shakespeare")
    ap.add_argument("--supernet-steps", type=int, default=500, help="sandwich steps (uniform gets 4x)")
    ap.add_argument("--standalone-steps", type=int, default=200)
    ap.add_argument("--per-kind", type=int, default=5, help="archs per attention kind (4 kinds)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--eval-batches", type=int, default=16)
    ap.add_argument("--throughput-rounds", type=int, default=7)
    ap.add_argument("--out", default="bench/results/ranking")
    args = ap.parse_args()
    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space = load_space(args.space)
    corpus = load_text_corpus(None)
    train = LMBatches(corpus.train, args.seq_len)
    val = list(LMBatches(corpus.val, args.seq_len).eval_batches(args.batch_size, max_batches=args.eval_batches))
    base = TrainConfig(steps=args.supernet_steps, batch_size=args.batch_size, seq_len=args.seq_len, lr=3e-3,
                       warmup=40, eval_every=10**6, ckpt_every=50)
    results: dict = {"args": vars(args), "torch": torch.__version__, "threads": torch.get_num_threads()}

    t0 = time.time()
    tp_file = out / "throughput.json"
    if args.throughput_rounds:
        results["throughput"] = throughput(space, train, base, args.throughput_rounds, steps=3)
        tp_file.write_text(json.dumps(results["throughput"], indent=2))
    else:  # --throughput-rounds 0: keep the last measurement (e.g. when resuming the slow part)
        results["throughput"] = json.loads(tp_file.read_text()) if tp_file.exists() else None
    print("throughput", results["throughput"], flush=True)

    supernets = {}
    for name, cfg in (("sandwich", base),
                      ("uniform", replace(base, sampling="uniform", distill=False, steps=4 * base.steps,
                                          warmup=4 * base.warmup, ckpt_every=200))):
        folder = out / f"supernet-{name}"
        t = time.time()
        train_supernet(space, train, val, folder, cfg, {"data": None, "task": "lm"},
                       progress=lambda total, row: print(f"\r{name} {row['step']}/{total} loss {row['loss']:.3f}",
                                                         end="", flush=True))
        supernets[name] = load_supernet(folder)[0]
        print(f"\n{name} supernet: {time.time() - t:.0f} s", flush=True)

    archs = pick_archs(space, args.per_kind, seed=1)
    evaluators = {k: Evaluator(m, val) for k, m in supernets.items()}
    fixed_cfg = replace(base, steps=args.standalone_steps, warmup=20)
    rows = []
    cache_file = out / "standalone.json"
    done = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    for i, (kind, arch) in enumerate(archs):
        if arch.id not in done:
            model = SubTransformer(arch).reset_parameters(seed=0)
            train_fixed(model, train, fixed_cfg)
            done[arch.id] = Evaluator(model, val).loss(arch)
            cache_file.write_text(json.dumps(done))
        row = {"id": arch.id, "kind": kind, "params": analytic_cost(arch).params, "standalone": done[arch.id],
               **{f"inherited_{k}": ev.loss(arch) for k, ev in evaluators.items()}}
        rows.append(row)
        print(f"{i + 1}/{len(archs)} {row}", flush=True)
    results["archs"] = rows
    results["ranking"] = {k: rank_stats([r[f"inherited_{k}"] for r in rows], [r["standalone"] for r in rows])
                          for k in supernets}
    results["ranking_by_params"] = rank_stats([-r["params"] for r in rows], [r["standalone"] for r in rows])
    results["seconds"] = time.time() - t0
    (out / "ranking.json").write_text(json.dumps(results, indent=2))
    plot(rows, results, out / "ranking.png")
    print(json.dumps({k: results[k] for k in ("ranking", "ranking_by_params", "throughput")}, indent=2))


def plot(rows, results, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    colours = {"softmax": "tab:blue", "window": "tab:orange", "linear": "tab:green", "mixed": "tab:purple"}
    for ax, name in zip(axes, ("sandwich", "uniform")):
        for kind, c in colours.items():
            pts = [(r[f"inherited_{name}"], r["standalone"]) for r in rows if r["kind"] == kind]
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], c=c, label=kind, s=22)
        st = results["ranking"][name]
        ax.set_title(f"{name}: Kendall {st['kendall_tau']:.2f}, Spearman {st['spearman_rho']:.2f}")
        ax.set_xlabel("validation loss, inherited weights (nats/byte)")
    axes[0].set_ylabel("validation loss, trained alone (nats/byte)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
