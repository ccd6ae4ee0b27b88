"""Attention that costs what it claims: sliding-window attention (blocked, O(n w)) against full
softmax attention (O(n^2)) over a whole sequence, T = 256 ... 2048, and the dense masked window the
kernel used before, for reference. Forward only (a prefill or an evaluation), batch 1, 4 heads of
32, interleaved rounds, medians; also the largest tensor each allocates (peak elements).

    python bench/attention.py --out bench/results/attention      # quiet machine wanted
Results: attention.json, attention.png in --out; the table goes to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from space import Layer  # noqa: E402
from supernet.attention import get_kernel  # noqa: E402
from supernet.attention.softmax import positions_mask  # noqa: E402


def dense_window(q, k, v, w):
    t = q.shape[2]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=positions_mask(0, t, 0, t, w, q.device))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048])
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench/results/attention")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    softmax, window = get_kernel("softmax"), get_kernel("window")
    lw, ls = Layer("window", 4, 4, 128, window=args.window), Layer("softmax", 4, 4, 128)
    rows = []
    for t in args.lengths:
        q, k, v = (torch.randn(1, 4, t, 32) for _ in range(3))
        fns = {"softmax": lambda: softmax.attend(q, k, v, {}, ls, True),
               f"window {args.window} (blocked)": lambda: window.attend(q, k, v, {}, lw, True),
               f"window {args.window} (dense mask)": lambda: dense_window(q, k, v, args.window)}
        times: dict[str, list[float]] = {n: [] for n in fns}
        with torch.inference_mode():
            for r in range(args.rounds + 1):
                for name in (list(fns) if r % 2 else list(fns)[::-1]):
                    t0 = time.perf_counter()
                    fns[name]()
                    if r:
                        times[name].append(time.perf_counter() - t0)
        row = {"T": t, **{n: statistics.median(v) for n, v in times.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "attention.json").write_text(json.dumps({"args": vars(args), "torch": torch.__version__, "rows": rows},
                                                   indent=2))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in rows[0]:
        if name != "T":
            ax.plot([r["T"] for r in rows], [r[name] * 1e3 for r in rows], "o-", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("forward time (ms), median")
    ax.legend(fontsize=8)
    ax.set_title(f"causal attention, 4 heads x 32, {args.threads} thread(s)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "attention.png", dpi=120)
    print("| T | softmax | window (blocked) | window (dense mask) | blocked / softmax |")
    print("|---|---|---|---|---|")
    for r in rows:
        vals = [r[n] for n in r if n != "T"]
        print(f"| {r['T']} | {vals[0] * 1e3:.2f} ms | {vals[1] * 1e3:.2f} ms | {vals[2] * 1e3:.2f} ms | "
              f"{vals[1] / vals[0]:.2f} |")


if __name__ == "__main__":
    main()
