"""A ranking benchmark that can be trusted: does the supernet order archs as training them alone does?

36 archs of `lm-shakespeare` by design, not by chance: for each attention pattern (every layer
softmax, every layer window, every layer linear, mixed) the 3 x 3 grid of embed {128, 192, 256} x
depth {2, 4, 6}, with heads, key/value heads, FFN ratio and window drawn per layer (seeded). Each
arch is trained alone from scratch with two seeds (weights and data order); the two seeds' order
is the ceiling any supernet can reach. Everything is scored on the **test** split (two plays that
neither training nor any selection ever sees).

A second set (`--set uniform`, its own --out) draws archs gene by gene from the whole space (mixed
per-layer settings, every precision; trained in fp32, scored at their precision), labelled by the
first layer's attention type: the pattern the designed set lacks and the supernet was once biased on.

    python bench/ranking.py standalone --out bench/results/ranking2     # hours; resumable
    python bench/ranking.py supernets --recipes sandwich balanced uniform --steps 1500 --out bench/results/ranking2
    python bench/ranking.py rank --supernet NAME=DIR [NAME=DIR ...] --out bench/results/ranking2
    python bench/ranking.py standalone --set uniform --seeds 0 1 --out bench/results/ranking_drawn

Candidate supernets get equal compute: a sandwich step trains 2 + n_random archs, so uniform sampling
(one arch a step) gets that many times the steps. Results: standalone.json (per arch and seed),
inherited.json, ranking.json and ranking.png in --out.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from space import Arch, Layer, Stack, analytic_cost, load_space  # noqa: E402
from space.files import atomic_write_text  # noqa: E402

PATTERNS = ("softmax", "window", "linear", "mixed")
# The drawn set (--set uniform): archs drawn gene by gene from the whole space, every precision;
# labelled by their first layer's type, where the supernet's old bias sat (issue 20).
DRAWN = ("first-softmax", "first-window", "first-linear")
SETS = ("designed", "uniform")


def grid(space, per_pattern: int | None = None) -> list[tuple[int, int]]:
    """The (embed, depth) cells: every embed of the space x its smallest, middle and largest depth
    (128/192/256 x 2/4/6 on lm-shakespeare); `per_pattern` of them, evenly spaced, when given."""
    ds = sorted(space.decoder.depth)
    cells = [(e, d) for e in sorted(space.decoder.embed) for d in sorted({ds[0], ds[len(ds) // 2], ds[-1]})]
    if per_pattern is None or per_pattern >= len(cells):
        return cells
    if per_pattern < 1:
        raise SystemExit(f"--per-pattern {per_pattern}: give at least 1")
    return [cells[round(i * (len(cells) - 1) / max(1, per_pattern - 1))] for i in range(per_pattern)]


def ranking_archs(space, seed: int = 0, per_pattern: int | None = None) -> list[tuple[str, Arch]]:
    """(pattern, arch) for every pattern x (embed, depth) cell of the grid; other genes drawn."""
    rng = random.Random(seed)
    ss = space.decoder
    kinds = dict(ss.attention)
    out = []
    for pattern in PATTERNS:
        for embed, depth in grid(space, per_pattern):
            while True:
                layers = []
                for _ in range(depth):
                    kind = rng.choice(list(kinds)) if pattern == "mixed" else pattern
                    heads = rng.choice(ss.heads)
                    param = {"window": rng.choice(kinds["window"])} if kind == "window" else {}
                    layers.append(Layer(kind, heads, rng.choice(ss.kv_choices(heads)),
                                        rng.choice(ss.ffn_choices(embed)), **param))
                if pattern != "mixed" or len({layer.attn for layer in layers}) > 1:
                    break
            arch = Arch(space.kind, space.head_dim, space.vocab_size, space.max_len, decoder=Stack(embed, tuple(layers)),
                        positions=space.positions)
            out.append((pattern, space.require(arch)))
    return out


def drawn_archs(space, n: int = 24, seed: int = 1) -> list[tuple[str, Arch]]:
    """(label, arch) for `n` distinct archs drawn uniformly per gene (`space.sample`): mixed per-layer
    settings and every precision of the space, labelled by the first layer's attention type."""
    rng = random.Random(seed)
    out, seen = [], set()
    while len(out) < n:
        arch = space.sample(rng)
        if arch.id not in seen:
            seen.add(arch.id)
            out.append((f"first-{arch.decoder.layers[0].attn}", arch))
    return out


def bench_archs(space, args) -> list[tuple[str, Arch]]:
    return (ranking_archs(space, args.arch_seed, args.per_pattern) if args.set == "designed" else drawn_archs(space, args.n_drawn, args.arch_seed))


def test_and_val(seq_len: int):
    from supernet.corpus import LMBatches, load_text_corpus
    corpus = load_text_corpus(None)
    train = LMBatches(corpus.train, seq_len)
    test = list(LMBatches(corpus.test, seq_len).eval_batches(32))
    val = list(LMBatches(corpus.val, seq_len).eval_batches(32))
    return train, val, test


def standalone(args) -> None:
    from supernet.evaluate import Evaluator
    from supernet.subnet import SubTransformer
    from supernet.train import TrainConfig, train_fixed
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space = load_space(args.space)
    archs = bench_archs(space, args)
    atomic_write_text(out / "archs.json", json.dumps([{"pattern": p, "id": a.id, "arch": a.to_dict()}
                                                      for p, a in archs], indent=1))
    train, val, test = test_and_val(args.seq_len)
    path = out / args.file
    done = json.loads(path.read_text()) if path.exists() else {}
    trained = merged_standalone(out)  # what any process trained (one file each): never trained again
    todo = [(seed, p, a) for seed in args.seeds for p, a in archs if str(seed) not in trained.get(a.id, {})
            and (not args.ids or a.id in args.ids)]
    if args.cheapest_first:  # the most archs with both seeds soonest
        todo.sort(key=lambda t: analytic_cost(t[2]).flops)
    t0 = time.time()
    for i, (seed, pattern, arch) in enumerate(todo):
        cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr,
                          warmup=args.warmup, seed=seed, eval_every=10**9, ckpt_every=10**9)
        t = time.time()
        model = SubTransformer(arch).reset_parameters(seed)
        losses = train_fixed(model, train, cfg)
        row = {"test": Evaluator(model, test).loss(arch), "val": Evaluator(model, val).loss(arch),
               "train_last50": sum(losses[-50:]) / 50, "seconds": time.time() - t, "steps": args.steps,
               "batch_size": args.batch_size, "seq_len": args.seq_len, "lr": args.lr, "threads": args.threads}
        done.setdefault(arch.id, {})[str(seed)] = row
        atomic_write_text(path, json.dumps(done, indent=1))
        rate = (time.time() - t0) / (i + 1)
        print(f"{i + 1}/{len(todo)} seed {seed} {pattern} {arch.id} params {analytic_cost(arch).params / 1e6:.2f}M "
              f"test {row['test']:.4f} ({row['seconds']:.0f} s; eta {rate * (len(todo) - i - 1) / 3600:.1f} h)",
              flush=True)


def merged_standalone(out: Path) -> dict:
    """arch id -> seed -> result, over every standalone*.json in `out` (one file per process)."""
    alone: dict = {}
    for f in sorted(out.glob("standalone*.json")):
        for arch_id, seeds in json.loads(f.read_text()).items():
            alone.setdefault(arch_id, {}).update(seeds)
    return alone


# Recipes compared at equal compute (TrainConfig fields over the shared base)
RECIPES = {
    "sandwich": {},  # largest + smallest (the space's reference type on every layer) + 2 random, distilled
    "balanced": {"extremes": "mixed"},  # the extremes' attention types drawn per layer at every step
    "balanced-nokd": {"extremes": "mixed", "distill": False},
    "adapted": {"extremes": "mixed", "type_adapters": True},  # balanced + linear's own map of the shared Q/K
    "uniform": {"sampling": "uniform", "distill": False},  # HAT: one random arch a step
}


def supernets(args) -> None:
    from supernet.config import TrainConfig
    from supernet.train import train_supernet
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    space = load_space(args.space)
    train, val, _ = test_and_val(args.seq_len)
    val = val[:args.eval_batches]
    for name in args.recipes:
        recipe = dict(RECIPES[name])
        per_step = 2 + recipe.get("n_random", 2) if recipe.get("sampling", "sandwich") == "sandwich" else 1
        steps = args.steps * 4 // per_step  # equal compute: 4 arch updates per sandwich step
        cfg = TrainConfig(steps=steps, batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr,
                          warmup=args.warmup * 4 // per_step, eval_every=max(1, steps // 10), ckpt_every=50,
                          eval_batches=args.eval_batches, **recipe)
        t = time.time()
        train_supernet(space, train, val, out / f"supernet-{name}", cfg, {"task": "lm", "data": None},
                       progress=lambda total, row: row["step"] % 100 == 0 and print(
                           f"{name} {row['step']}/{total} loss {row['loss']:.3f} {row['tokens_per_s']:.0f} tok/s",
                           flush=True))
        print(f"{name}: {steps} steps in {time.time() - t:.0f} s", flush=True)


def rank_stats(x, y) -> dict[str, float]:
    from scipy.stats import kendalltau, spearmanr
    return {"kendall_tau": float(kendalltau(x, y).statistic), "spearman_rho": float(spearmanr(x, y).statistic),
            "n": len(x)}


def rank(args) -> None:
    from supernet.checkpoint import load_supernet
    from supernet.evaluate import Evaluator
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    archs = {r["id"]: (r["pattern"], Arch.from_dict(r["arch"])) for r in json.loads((out / "archs.json").read_text())}
    alone = merged_standalone(out)
    ids = [i for i in archs if len(alone.get(i, {})) >= args.min_seeds]
    twice = [i for i in ids if len(alone[i]) >= 2]
    _, _, test = test_and_val(args.seq_len)
    inh_path = out / "inherited.json"
    inherited = json.loads(inh_path.read_text()) if inh_path.exists() else {}
    for spec in args.supernet:
        name, _, folder = spec.partition("=")
        model, record = load_supernet(folder)
        ev = Evaluator(model, test)
        key = f"{name}@{record.step}"
        got = inherited.setdefault(key, {})
        for i in ids:
            if i not in got:
                got[i] = ev.loss(archs[i][1])
        atomic_write_text(inh_path, json.dumps(inherited, indent=1))
        print(f"{key}: {len(got)} archs scored on the test split", flush=True)
    mean = {i: sum(v["test"] for v in alone[i].values()) / len(alone[i]) for i in ids}
    def ceiling(sel):  # the order two seeds of stand-alone training agree on
        pair = [sorted(alone[i])[:2] for i in sel]
        return rank_stats([alone[i][a]["test"] for i, (a, _) in zip(sel, pair)],
                          [alone[i][b]["test"] for i, (_, b) in zip(sel, pair)]) if len(sel) >= 4 else None
    result = {"archs": len(ids), "archs_with_two_seeds": len(twice), "ceiling": ceiling(twice),
              "params_only": rank_stats([-analytic_cost(archs[i][1]).params for i in ids], [mean[i] for i in ids]),
              "supernets": {}}
    result["ceiling_per_pattern"] = {p: ceiling([i for i in twice if archs[i][0] == p]) for p in PATTERNS + DRAWN
                                   if any(archs[i][0] == p for i in ids)}
    result["seed_spread"] = ({"mean_abs_diff": sum(abs(alone[i][a]["test"] - alone[i][b]["test"])
                                                   for i in twice for a, b in [sorted(alone[i])[:2]]) / len(twice)}
                             if twice else None)
    for key, got in inherited.items():
        if not all(i in got for i in ids):
            continue
        x, y = [got[i] for i in ids], [mean[i] for i in ids]
        per = {p: rank_stats([got[i] for i in ids if archs[i][0] == p], [mean[i] for i in ids if archs[i][0] == p])
               for p in PATTERNS + DRAWN if sum(archs[i][0] == p for i in ids) >= 4}
        order_x = {i: r for r, i in enumerate(sorted(ids, key=lambda i: got[i]))}
        order_y = {i: r for r, i in enumerate(sorted(ids, key=lambda i: mean[i]))}
        worst = sorted(ids, key=lambda i: -abs(order_x[i] - order_y[i]))[:6]
        offset = {p: sum(got[i] - mean[i] for i in ids if archs[i][0] == p) / sum(archs[i][0] == p for i in ids)
                  for p in PATTERNS + DRAWN if any(archs[i][0] == p for i in ids)}
        result["supernets"][key] = {"overall": rank_stats(x, y), "per_pattern": per,
                                    "mean_offset_per_pattern": offset,
                                    "most_displaced": [{"id": i, "pattern": archs[i][0],
                                                        "rank_inherited": order_x[i], "rank_standalone": order_y[i]}
                                                       for i in worst]}
    atomic_write_text(out / "ranking.json", json.dumps(result, indent=1))
    plot(result, inherited, mean, archs, ids, out / "ranking.png")
    print(json.dumps({k: v for k, v in result.items() if k != "supernets"}, indent=1))
    for key, r in result["supernets"].items():
        per = ", ".join(f"{p} {v['kendall_tau']:.2f}" for p, v in r["per_pattern"].items())
        print(f"{key}: tau {r['overall']['kendall_tau']:.3f} rho {r['overall']['spearman_rho']:.3f} | per pattern tau: {per}")


def plot(result, inherited, mean, archs, ids, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = list(result["supernets"])
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 4.2), squeeze=False)
    colours = {"softmax": "tab:blue", "window": "tab:orange", "linear": "tab:green", "mixed": "tab:purple",
               "first-softmax": "tab:blue", "first-window": "tab:orange", "first-linear": "tab:green"}
    for ax, key in zip(axes[0], keys):
        for p, c in colours.items():
            pts = [(inherited[key][i], mean[i]) for i in ids if archs[i][0] == p]
            ax.scatter([a for a, _ in pts], [b for _, b in pts], c=c, s=20, label=p)
        st = result["supernets"][key]["overall"]
        ax.set_title(f"{key}: tau {st['kendall_tau']:.2f}, rho {st['spearman_rho']:.2f}", fontsize=9)
        ax.set_xlabel("test loss, inherited weights (nats/byte)")
    axes[0][0].set_ylabel("test loss, trained alone (mean of its seeds)")
    axes[0][0].legend(fontsize=8)
    c = result["ceiling"]
    ceiling = (f"seed-to-seed ceiling tau {c['kendall_tau']:.2f}, rho {c['spearman_rho']:.2f} ({c['n']} archs)"
               if c else "seed-to-seed ceiling not measured")
    fig.suptitle(f"{len(ids)} archs; {ceiling}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="stage", required=True)
    st = sub.add_parser("standalone", help="train every arch alone, per seed (resumable)")
    st.add_argument("--space", default="lm-shakespeare")
    st.add_argument("--set", choices=SETS, default="designed",
                    help="designed: the 36 archs of the pattern grid; uniform: --n-drawn archs drawn per gene")
    st.add_argument("--n-drawn", type=int, default=24)
    st.add_argument("--per-pattern", type=int, default=None,
                    help="designed set: this many (embed, depth) cells per pattern, evenly spaced (default: all 9)")
    st.add_argument("--arch-seed", type=int, default=0)
    st.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    st.add_argument("--steps", type=int, default=1000)
    st.add_argument("--batch-size", type=int, default=16)
    st.add_argument("--seq-len", type=int, default=128)
    st.add_argument("--lr", type=float, default=3e-3)
    st.add_argument("--warmup", type=int, default=50)
    st.add_argument("--threads", type=int, default=1)
    st.add_argument("--ids", nargs="*", default=None, help="train only these archs (default: all)")
    st.add_argument("--cheapest-first", action="store_true", help="train the cheapest (arch, seed) first")
    st.add_argument("--file", default="standalone.json", help="results file in --out (one per process)")
    st.add_argument("--out", default="bench/results/ranking2")
    sn = sub.add_parser("supernets", help="train candidate supernets at equal compute (resumable)")
    sn.add_argument("--space", default="lm-shakespeare")
    sn.add_argument("--recipes", nargs="+", default=["sandwich", "balanced"], choices=list(RECIPES))
    sn.add_argument("--steps", type=int, default=1500, help="sandwich steps (uniform gets 4x)")
    sn.add_argument("--batch-size", type=int, default=16)
    sn.add_argument("--seq-len", type=int, default=128)
    sn.add_argument("--lr", type=float, default=3e-3)
    sn.add_argument("--warmup", type=int, default=50)
    sn.add_argument("--eval-batches", type=int, default=8)
    sn.add_argument("--threads", type=int, default=1)
    sn.add_argument("--out", default="bench/results/ranking2")
    rk = sub.add_parser("rank", help="inherited vs stand-alone order, on the test split")
    rk.add_argument("--supernet", nargs="+", required=True, metavar="NAME=DIR")
    rk.add_argument("--min-seeds", type=int, default=2,
                    help="rank the archs trained alone with at least this many seeds; the seed-to-seed "
                         "ceiling is always over the archs that have two")
    rk.add_argument("--seq-len", type=int, default=128)
    rk.add_argument("--threads", type=int, default=1)
    rk.add_argument("--out", default="bench/results/ranking2")
    args = ap.parse_args()
    {"standalone": standalone, "supernets": supernets, "rank": rank}[args.stage](args)


if __name__ == "__main__":
    main()
