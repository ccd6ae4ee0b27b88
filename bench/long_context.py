"""Does a long-context supernet use its context? Test-split loss of supernets' largest archs on the
same bytes, each model reading them through its own context window.

The test split is cut into spans of `--span` bytes (default 2048; `--spans` of them, evenly spaced).
A model scored at context C reads each span as span/C consecutive windows of C bytes and predicts
every byte of each window from the bytes before it in that window: every model predicts the same
bytes, and the only difference is how far back it may look. Losses are nats per byte over all the
spans' bytes, and also per bucket of context (the byte's position inside its window: 0-63, 64-127,
128-255, ...), which shows where a longer window pays.

    python bench/long_context.py --supernet short=configs/supernets/lm-shakespeare@128,256 \\
        --supernet long=runs/supernet-long@256,1024,2048 --out bench/results/long_context
Results: long_context.json, long_context.png in --out; the table goes to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from space.display import arch_summary  # noqa: E402
from space.files import atomic_write_text  # noqa: E402
from supernet.checkpoint import load_supernet  # noqa: E402
from supernet.corpus import load_text_corpus  # noqa: E402
from supernet.corpus.tokenizer import tokenizer_from_dict  # noqa: E402
from supernet.train import run_batch  # noqa: E402


def buckets(span: int) -> list[tuple[int, int]]:
    """Context buckets [lo, hi): 0-63, 64-127, then doubling up to `span`."""
    edges = [0, 64]
    while edges[-1] < span:
        edges.append(min(span, edges[-1] * 2))
    return list(zip(edges[:-1], edges[1:]))


def span_starts(n_tokens: int, span: int, count: int) -> list[int]:
    """`count` span starts spread evenly over a split of `n_tokens` (each span has a next byte)."""
    last = n_tokens - span - 1
    if last < 0:
        raise SystemExit(f"the test split has {n_tokens} bytes, fewer than one span of {span + 1}")
    count = min(count, last // span + 1)
    return [round(i * last / max(1, count - 1)) for i in range(count)]


@torch.inference_mode()
def score(model, arch, tokens: torch.Tensor, starts: list[int], span: int, context: int,
          batch: int) -> torch.Tensor:
    """Summed loss per position of a span (shape [span]), over all spans, at window `context`."""
    if span % context:
        raise SystemExit(f"context {context} does not divide the span {span}")
    rows = []
    for s in starts:
        for w in range(s, s + span, context):
            rows.append(tokens[w:w + context + 1])
    xy = torch.stack(rows)  # [spans * span/context, context + 1]
    per_window = torch.zeros(xy.shape[0], context, dtype=torch.float64)
    for i in range(0, xy.shape[0], batch):
        chunk = xy[i:i + batch]
        logits = run_batch(model, chunk[:, :-1], arch).float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), chunk[:, 1:], reduction="none")
        per_window[i:i + batch] = nll.double()
    # window j of a span covers span positions [j*context, (j+1)*context); each position's context is
    # its offset inside its window
    return per_window.view(len(starts), span // context, context).sum(0).reshape(span)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--supernet", action="append", required=True, metavar="NAME=DIR@C1,C2",
                    help="a supernet folder and the contexts to score its largest arch at")
    ap.add_argument("--span", type=int, default=2048)
    ap.add_argument("--spans", type=int, default=64)
    ap.add_argument("--split", default="test", choices=["val", "test"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4, help="windows per forward pass")
    ap.add_argument("--out", default="bench/results/long_context")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for item in args.supernet:
        name, sep, rest = item.partition("=")
        folder, at, ctx = rest.partition("@")
        if not sep or not at:
            raise SystemExit(f"--supernet {item!r}: give NAME=DIR@C1,C2 (e.g. long=runs/supernet-long@2048)")
        runs.append((name, Path(folder), [int(c) for c in ctx.split(",")]))
    results: dict = {"span": args.span, "split": args.split, "buckets": buckets(args.span), "models": {}}
    for name, folder, contexts in runs:
        model, record = load_supernet(folder)
        model.eval()
        arch = model.space.largest()
        tok = tokenizer_from_dict(record.tokenizer)
        split = getattr(load_text_corpus(record.data, tok), args.split)
        tokens = torch.tensor(split, dtype=torch.long)  # a copy: the split is a read-only array
        starts = span_starts(len(tokens), args.span, args.spans)
        for c in contexts:
            if c > arch.max_len:
                raise SystemExit(f"{name}: context {c} exceeds its max_len {arch.max_len}")
            t0 = time.perf_counter()
            sums = score(model, arch, tokens, starts, args.span, c, args.batch)
            n = len(starts)
            by_ctx = (sums.view(-1, c).sum(0) / (n * args.span // c))  # mean loss by offset in window
            per_bucket = []
            for lo, hi in results["buckets"]:
                per_bucket.append(float(by_ctx[lo:hi].mean()) if lo < c else None)
            row = {"context": c, "loss": float(sums.sum() / (n * args.span)), "bytes": n * args.span,
                   "by_bucket": per_bucket, "seconds": time.perf_counter() - t0,
                   "arch": arch_summary(arch),
                   "train_seq_len": record.train.seq_len, "steps": record.step}
            results["models"].setdefault(name, []).append(row)
            print(f"{name} @ {c}: {row['loss']:.4f} nats/byte on {row['bytes']:,} {args.split} bytes "
                  f"({row['seconds']:.0f} s)", flush=True)
            atomic_write_text(out / "long_context.json", json.dumps(results, indent=2))
    plot(results, out / "long_context.png")


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    mids = [math.sqrt(max(lo, 1) * hi) for lo, hi in results["buckets"]]
    for name, rows in results["models"].items():
        for row in rows:
            pts = [(m, v) for m, v in zip(mids, row["by_bucket"]) if v is not None]
            ax.plot(*zip(*pts), marker="o", label=f"{name} @ {row['context']} (mean {row['loss']:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("bytes of context before the predicted byte (bucket)")
    ax.set_ylabel(f"{results['split']} loss, nats/byte")
    ax.set_title(f"Largest archs on the same {results['span']}-byte spans")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
