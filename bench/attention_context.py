"""Attention latency and memory against context, per type, in a whole model: the issue's 4 x 256
model (8 heads of 32, FFN 1024, fp32; RoPE in the decoders, a learned table in the encoders, since
Linformer and Fastformer take no rotation) with every layer one attention type.

- decoder types (softmax, window-64, window-256, linear): prefill T bytes then `--gen` cached decode
  steps, as `nas measure` runs a generation workload (latency/runner.py): time to first token
  (the prefill alone), per-token decode ((whole - prefill) / gen) and the whole;
- encoder types (softmax, Linformer with k = 256, Fastformer; bidirectional): one forward pass of
  T tokens, what an encoder-only task runs;
- memory: the decode state after the workload (= the cache tensors' bytes, tests/test_memory.py)
  and the predicted peak of state + activations (space/memory.py).

Raw wall clock, `--threads` threads, interleaved rounds (the order of the patterns reversed every
other round), medians. Never run it beside another process: timing on a shared CPU drifts.

    python bench/attention_context.py --out bench/results/attention_context
Results: attention_context.json and attention_context.png in --out; the table goes to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency.runner import build, cpu_identity  # noqa: E402
from space import Arch, Layer, Stack, Workload  # noqa: E402
from space.files import atomic_write_text  # noqa: E402
from space.memory import inference_memory  # noqa: E402

DECODER = {"softmax": dict(attn="softmax"), "window-64": dict(attn="window", window=64),
           "window-256": dict(attn="window", window=256), "linear": dict(attn="linear")}
ENCODER = {"softmax": dict(attn="softmax"), "linformer-256": dict(attn="linformer", proj_len=256),
           "fastformer": dict(attn="fastformer")}


def model_arch(kind: str, layer: dict, max_len: int) -> Arch:
    layers = tuple(Layer(heads=8, kv_heads=8, ffn=1024, **layer) for _ in range(4))
    stack = Stack(256, layers)
    if kind == "decoder":
        return Arch("decoder", 32, 259, max_len, decoder=stack, positions="rope")
    return Arch("encoder", 32, 259, max_len, encoder=stack, classes=2)


def median_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench/results/attention_context")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    max_len = max(args.lengths) + args.gen
    rows = []
    t_start = time.perf_counter()
    for n, t in enumerate(args.lengths):
        cases = {}
        for name, layer in DECODER.items():
            arch = model_arch("decoder", layer, max_len)
            w = Workload(1, t, args.gen)
            cases[("decoder", name, "whole")] = (arch, w, build(arch, w))
            cases[("decoder", name, "prefill")] = (arch, w, build(arch, w, prefill_only=True))
        for name, layer in ENCODER.items():
            arch = model_arch("encoder", layer, max_len)
            w = Workload(1, t, 0)
            cases[("encoder", name, "forward")] = (arch, w, build(arch, w))
        times: dict = {key: [] for key in cases}
        for r in range(args.rounds + 1):  # round 0 warms up
            for key in (list(cases) if r % 2 else list(cases)[::-1]):
                t0 = time.perf_counter()
                cases[key][2]()
                if r:
                    times[key].append(time.perf_counter() - t0)
        for kind, names in (("decoder", DECODER), ("encoder", ENCODER)):
            for name in names:
                if kind == "decoder":
                    arch, w, _ = cases[(kind, name, "whole")]
                    whole, prefill = median_ms(times[(kind, name, "whole")]), median_ms(times[(kind, name, "prefill")])
                    row = {"kind": kind, "type": name, "T": t, "gen": args.gen, "whole_ms": whole,
                           "prefill_ms": prefill, "decode_ms_per_token": (whole - prefill) / args.gen}
                else:
                    arch, w, _ = cases[(kind, name, "forward")]
                    row = {"kind": kind, "type": name, "T": t, "forward_ms": median_ms(times[(kind, name, "forward")])}
                mem = inference_memory(arch, w)
                row.update(state_bytes=mem.state, predicted_peak_bytes=mem.state + mem.activations,
                           weight_bytes=mem.weights)
                rows.append(row)
        done = time.perf_counter() - t_start
        left = sum(x * x for x in args.lengths[n + 1:]) / max(1, sum(x * x for x in args.lengths[:n + 1])) * done
        print(f"T={t}: done ({done:.0f} s elapsed, about {left:.0f} s left)", flush=True)
        atomic_write_text(out / "attention_context.json", json.dumps(
            {"cpu": cpu_identity(), "threads": args.threads, "torch": torch.__version__, "rounds": args.rounds,
             "rows": rows}, indent=1))
    plot(rows, out / "attention_context.png")
    table(rows)


def table(rows: list[dict]) -> None:
    lengths = sorted({r["T"] for r in rows})
    print("| decoder, every layer | " + " | ".join(f"T={t}: prefill / decode per token / state" for t in lengths) + " |")
    print("|---" * (len(lengths) + 1) + "|")
    for name in DECODER:
        cells = []
        for t in lengths:
            r = next(x for x in rows if x["kind"] == "decoder" and x["type"] == name and x["T"] == t)
            cells.append(f"{r['prefill_ms']:.0f} ms / {r['decode_ms_per_token']:.2f} ms / {r['state_bytes'] / 1e6:.2f} MB")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    print("| encoder, every layer | " + " | ".join(f"T={t}" for t in lengths) + " |")
    print("|---" * (len(lengths) + 1) + "|")
    for name in ENCODER:
        cells = [f"{next(x for x in rows if x['kind'] == 'encoder' and x['type'] == name and x['T'] == t)['forward_ms']:.0f} ms"
                 for t in lengths]
        print(f"| {name} | " + " | ".join(cells) + " |")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    panels = [("decoder", "prefill_ms", "prefill (time to first token), ms"),
              ("decoder", "decode_ms_per_token", "decode, ms per token"),
              ("decoder", "state_bytes", "decode state after T + gen, MB"),
              ("encoder", "forward_ms", "encoder forward, ms")]
    for ax, (kind, key, label) in zip(axes, panels):
        for name in (DECODER if kind == "decoder" else ENCODER):
            pts = sorted((r["T"], r[key]) for r in rows if r["kind"] == kind and r["type"] == name)
            ys = [y / 1e6 if key == "state_bytes" else y for _, y in pts]
            ax.plot([x for x, _ in pts], ys, "o-", label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("context T (bytes)")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("4 x 256 model, every layer one attention type (raw wall clock, medians)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
