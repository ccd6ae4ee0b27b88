"""Inference memory, predicted (space/memory.py) against measured on this CPU: for the issue's
4 x 256 models (8 heads, FFN 1024, RoPE) of five attention patterns, prefill T tokens then decode
`--gen` more with the cache, at each T.

Measured, each (arch, T) in a fresh process, one thread:
- weights: the bytes of the model's parameter and buffer tensors;
- state: the bytes of the cache tensors after the workload;
- peak: the process's peak resident memory during the workload (Linux VmHWM, reset through
  /proc/self/clear_refs after the model is built) above its resident memory before it: what the
  workload itself needed beyond the loaded model (activations, state, allocator slack), against
  the predicted state + activations.

    python bench/memory.py --out bench/results/memory        # any machine state: memory, not time
Results: memory.json and memory.png in --out; the table goes to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from space import Arch, Layer, Stack, Workload  # noqa: E402
from space.files import atomic_write_text  # noqa: E402
from space.memory import inference_memory  # noqa: E402

PATTERNS = {
    "all softmax": ["softmax"] * 4,
    "all window-64": ["window"] * 4,
    "all linear": ["linear"] * 4,
    "softmax + 3 linear": ["softmax"] + ["linear"] * 3,
    "3 window + softmax": ["window"] * 3 + ["softmax"],
}


def pattern_arch(kinds: list[str], max_len: int) -> Arch:
    layers = tuple(Layer(t, 8, 8, 1024, window=64 if t == "window" else None) for t in kinds)
    return Arch("decoder", 32, 259, max_len, decoder=Stack(256, layers), positions="rope")


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(arch_json: str, seq_len: int, gen: int) -> None:
    """One workload in this process; prints the measured figures as JSON."""
    import ctypes
    import gc

    import torch

    from supernet.functional import Cache
    from supernet.subnet import SubTransformer
    torch.set_num_threads(1)
    arch = Arch.from_json(arch_json)
    model = SubTransformer(arch).reset_parameters(0).eval()
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, arch.vocab_size, (1, seq_len), generator=g)
    steps = [torch.randint(0, arch.vocab_size, (1, 1), generator=g) for _ in range(gen)]

    def run() -> Cache:
        cache = Cache()
        with torch.no_grad():
            model(prompt, cache=cache, last_only=True)  # as generation and the latency runner run it
            for tok in steps:
                model(tok, cache=cache, last_only=True)
        return cache
    run()  # the first pass also allocates the kernels' one-time workspaces: not the workload's
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # what the first pass freed goes back to the system
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _kib("VmRSS")
    cache = run()
    peak = _kib("VmHWM") - before

    state = cache.state_bytes()
    print(json.dumps({"weights": weights, "state": state, "peak_above_model": peak}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 2048])
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--out", default="bench/results/memory")
    ap.add_argument("--child", nargs=3, metavar=("ARCH_JSON", "SEQ_LEN", "GEN"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], int(args.child[1]), int(args.child[2]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    max_len = max(args.lengths) + args.gen
    rows = []
    for name, kinds in PATTERNS.items():
        arch = pattern_arch(kinds, max_len)
        for t in args.lengths:
            w = Workload(1, t, args.gen)
            pred = inference_memory(arch, w)
            got = subprocess.run([sys.executable, __file__, "--child", arch.to_json(), str(t), str(args.gen)],
                                 check=True, capture_output=True, text=True)
            meas = json.loads(got.stdout.strip().splitlines()[-1])
            rows.append({"pattern": name, "arch_id": arch.id, "seq_len": t, "gen": args.gen,
                         "predicted": pred.to_dict(), "measured": meas})
            print(f"{name:20s} T={t:5d}: weights {pred.weights / 1e6:.2f}/{meas['weights'] / 1e6:.2f} MB, "
                  f"state {pred.state / 1e6:.2f}/{meas['state'] / 1e6:.2f} MB, state+activations "
                  f"{(pred.state + pred.activations) / 1e6:.2f} MB predicted, peak {meas['peak_above_model'] / 1e6:.2f} MB "
                  "measured", flush=True)
    from latency.runner import cpu_identity
    atomic_write_text(out / "memory.json", json.dumps({"cpu": cpu_identity(), "rows": rows}, indent=1))
    plot(rows, out / "memory.png")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    lengths = sorted({r["seq_len"] for r in rows})
    fig, axes = plt.subplots(1, len(lengths), figsize=(4.2 * len(lengths), 4), sharey=True)
    for ax, t in zip(axes if len(lengths) > 1 else [axes], lengths):
        sel = [r for r in rows if r["seq_len"] == t]
        x = range(len(sel))
        pred = [(r["predicted"]["state"] + r["predicted"]["activations"]) / 1e6 for r in sel]
        meas = [r["measured"]["peak_above_model"] / 1e6 for r in sel]
        ax.bar([i - 0.2 for i in x], pred, 0.4, label="predicted state + activations")
        ax.bar([i + 0.2 for i in x], meas, 0.4, label="measured peak above the model")
        ax.set_xticks(list(x), [r["pattern"] for r in sel], rotation=35, ha="right", fontsize=8)
        ax.set_title(f"prefill {t} + decode {sel[0]['gen']}")
        ax.set_yscale("log")
    axes_list = axes if len(lengths) > 1 else [axes]
    axes_list[0].set_ylabel("MB")
    axes_list[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
