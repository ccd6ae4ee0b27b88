"""Validates the GPU kernel model (latency/kernels.py) without a device:

(a) held-out grid points: a random tenth of each table's rows left out, predicted from the rest by
    the same reading the model uses (share within +-10%, median and 90th-percentile error), over
    several seeds; each also without the monotone fit ('raw'), to show what it costs;
(b) one op across frameworks: the A100's bf16 GEMM as vLLM and SGLang measured it; with --wheel,
    also its attention as vLLM, SGLang and TRT-LLM measured it;
(c) the head-size rule: head size 64 (and with --wheel, 192 and 256) predicted from the 128 tables
    on H100 and H200, against the measured tables (the model's rule and the alternatives);
(d) published end-to-end figures of known models on the A100, beside a plain sum of this module's
    kernels for the models' shapes (a preview for stage 2: no fusion, no host overhead).

    python bench/gpu_kernels.py --seeds 5 [--wheel /tmp/aic/aiconfigurator_core-0.12.0-*.whl]

Writes bench/results/gpu_kernels/results.json and results.md (the tables of docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency.hardware import load_hardware  # noqa: E402
from latency.kernels import (DECODE_AXES, GEMM_AXES, MONOTONE, PREFILL_AXES, Grid, KernelModel,  # noqa: E402
                             _read_csv, load_kernel_tables, tables_dir)

GPUS = ("a100", "h100", "h200")
OUT = Path(__file__).resolve().parent / "results" / "gpu_kernels"


def errors(predicted: np.ndarray, measured: np.ndarray) -> dict:
    rel = np.abs(predicted / measured - 1)
    return {"n": int(len(rel)), "within_10": float(np.mean(rel <= 0.1)), "median": float(np.median(rel)),
            "p90": float(np.quantile(rel, 0.9)), "bias": float(np.median(predicted / measured) - 1)}


def pooled(parts: list[dict]) -> dict:
    """Mean over seeds of each figure (each seed holds out about the same number of rows)."""
    return {k: (sum(p[k] for p in parts) if k == "n" else float(np.mean([p[k] for p in parts]))) for k in parts[0]}


def held_out(axes, rows, seeds: int, monotone: tuple[str, ...], relevant) -> dict:
    """rows: (N, D + 1) coordinates and microseconds."""
    every, near = [], []
    for seed in range(seeds):
        hold = np.random.default_rng(seed).random(len(rows)) < 0.1
        grid = Grid.from_rows(axes, rows[~hold, :-1], rows[~hold, -1] * 1e-6, monotone=monotone)
        test = rows[hold]
        predicted = grid(*test[:, :-1].T) * 1e6
        every.append(errors(predicted, test[:, -1]))
        mask = relevant(test)
        near.append(errors(predicted[mask], test[mask, -1]))
    return {"all": pooled(every), "hwnas": pooled(near)}


# the shapes hwnas archs reach (batch 1-4, prompts up to 2,304 tokens), with a margin
GEMM_RELEVANT = lambda r: (r[:, 0] <= 4096) & (r[:, 2] <= 4096)  # noqa: E731
ATTN_RELEVANT = lambda r: (r[:, 0] <= 8) & (r[:, 1] <= 4096)  # noqa: E731


def tables_held_out(seeds: int) -> dict:
    out = {}
    for gpu in GPUS:
        folder = tables_dir() / gpu
        gemm = _read_csv(folder / "gemm_bf16.csv", GEMM_AXES)
        out[gpu] = {"gemm": held_out(GEMM_AXES, gemm, seeds, MONOTONE["gemm"], GEMM_RELEVANT),
                    "gemm (raw)": held_out(GEMM_AXES, gemm, seeds, (), GEMM_RELEVANT)}
        for name, axes in (("prefill", PREFILL_AXES), ("decode", DECODE_AXES)):
            rows = _read_csv(folder / f"{name}_bf16.csv", axes + ("head_dim",))
            for d in np.unique(rows[:, -2]).astype(int):
                r = rows[rows[:, -2] == d][:, [0, 1, 2, 3, 5]]
                out[gpu][f"{name} d={d}"] = held_out(axes, r, seeds, MONOTONE[name], ATTN_RELEVANT)
                out[gpu][f"{name} d={d} (raw)"] = held_out(axes, r, seeds, (), ATTN_RELEVANT)
    return out


def cross_framework() -> dict:
    folder = tables_dir() / "a100"
    vllm = _read_csv(folder / "gemm_bf16.csv", GEMM_AXES)
    sglang = _read_csv(folder / "gemm_bf16.sglang.csv", GEMM_AXES)
    index = {tuple(r[:3]): r[3] for r in vllm}
    common = np.array([[index[tuple(r[:3])], r[3]] for r in sglang if tuple(r[:3]) in index])
    model = KernelModel(load_kernel_tables(folder), load_hardware("a100"))
    predicted = model.gemm(*sglang[:, :3].T) * 1e6
    return {"points": int(len(common)), "sglang vs vllm (raw)": errors(common[:, 1], common[:, 0]),
            "model (vllm, monotone) vs sglang": errors(predicted, sglang[:, 3])}


def cross_framework_attention(wheel: Path) -> dict:
    """The A100's attention (head size 128, bf16, batch <= 64) as vLLM (shipped), SGLang and
    TRT-LLM measured it, on their common shapes: read from the wheel (needs pyarrow)."""
    import io
    import zipfile
    import pyarrow.parquet as pq
    z = zipfile.ZipFile(wheel)
    out = {}
    for name, phase, length, axes in (("prefill", "context", "isl", PREFILL_AXES),
                                      ("decode", "generation", "step", DECODE_AXES)):
        ours = _read_csv(tables_dir() / "a100" / f"{name}_bf16.csv", axes + ("head_dim",))
        index = {tuple(r[:4]): r[-1] for r in ours}
        for framework, version in (("sglang", "0.5.10"), ("trtllm", "1.0.0")):
            path = f"aiconfigurator_core/systems/data/a100_sxm/attention/{framework}/{version}/"
            df = pq.read_table(io.BytesIO(z.read(f"{path}{phase}_attention_perf.parquet"))).to_pandas()
            df = df[(df.head_dim == 128) & (df.kv_cache_dtype == "bfloat16") & (df.batch_size <= 64)]
            pairs = [(index[k], ms * 1e3) for k, ms in zip(
                map(tuple, df[["batch_size", length, "num_heads", "num_key_value_heads"]].to_numpy(float)),
                df.latency.to_numpy()) if k in index]
            theirs, vllm = np.array(pairs)[:, 1], np.array(pairs)[:, 0]
            small = vllm < 30
            out[f"a100 {name}: {framework} {version} vs vllm"] = {
                "all": errors(theirs, vllm), "under 30 us": errors(theirs[small], vllm[small])}
    return out


def only_128(gpu: str) -> KernelModel:
    """The GPU's model as if its tables held head size 128 alone (as the A100's do)."""
    t = load_kernel_tables(tables_dir() / gpu)
    t = replace(t, prefill={128: t.prefill[128]}, decode={128: t.decode[128]})
    return KernelModel(t, load_hardware(gpu))


def head_size_rule(wheel: Path | None) -> dict:
    """Head size 64 from the 128 tables on H100/H200; with the package's wheel, also 192 and 256
    (tables not shipped: read from the wheel, which needs pyarrow)."""
    out = {}
    for gpu in ("h100", "h200"):
        km = only_128(gpu)
        cases = {64: {name: _read_csv(tables_dir() / gpu / f"{name}_bf16.csv", axes + ("head_dim",))
                      for name, axes in (("prefill", PREFILL_AXES), ("decode", DECODE_AXES))}}
        if wheel is not None:
            cases.update(wide_heads(wheel, gpu))
        for d, tables in cases.items():
            for name, rows in tables.items():
                r = rows[rows[:, -2] == d]
                b, s, h, kv, us = r[:, 0], r[:, 1], r[:, 2], r[:, 3], r[:, -1]
                grid = getattr(km.tables, name)[128]
                rules = {"used": getattr(km, name)(b, s, h, kv, d) * 1e6,
                         "batch x d/128": grid(b * d / 128, s, h, kv) * 1e6,
                         "heads x d/128": grid(b, s, h * d / 128, kv * d / 128) * 1e6,
                         "no correction": grid(b, s, h, kv) * 1e6}
                out[f"{gpu} {name}, {d} from 128"] = {rule: errors(p, us) for rule, p in rules.items()}
    return out


def wide_heads(wheel: Path, gpu: str) -> dict:
    import io
    import zipfile
    import pyarrow.parquet as pq
    z = zipfile.ZipFile(wheel)
    src = json.loads((tables_dir() / gpu / "source.json").read_text())["tables"]
    out = {}
    for d in (192, 256):
        out[d] = {}
        for name, phase, length in (("prefill", "context", "isl"), ("decode", "generation", "step")):
            folder = src[f"{name}_bf16.csv"]["from"]
            df = pq.read_table(io.BytesIO(z.read(f"aiconfigurator_core/systems/{folder}{phase}_attention_perf.parquet"))
                               ).to_pandas()
            df = df[(df.head_dim == d) & (df.kv_cache_dtype == "bfloat16") & (df.attn_dtype == "bfloat16")
                    & (df.window_size == 0) & (df.batch_size <= 64) & (df[length] <= 16384)]
            out[d][name] = np.column_stack([df[c].to_numpy(float) for c in
                                            ("batch_size", length, "num_heads", "num_key_value_heads", "head_dim")]
                                           + [df.latency.to_numpy() * 1e3])
    return out


@dataclass(frozen=True)
class Model:
    """A decoder's shapes, as its paper or config gives them."""
    name: str
    layers: int
    d: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int
    gated: bool  # SwiGLU (LLaMA): two up projections; else one (GPT-J's GELU MLP)


LLAMA_7B = Model("LLaMA 7B", 32, 4096, 32, 32, 128, 11008, 32000, True)
GPTJ_6B = Model("GPT-J 6B", 28, 4096, 16, 16, 256, 16384, 50400, False)


def kernel_sum(km: KernelModel, m: Model, tokens: int, context: int, decode: bool) -> float:
    """Seconds for one forward over `tokens` new tokens at batch 1: the kernels of every layer, as
    separate launches (norms, rotary, activation and residual adds as element-wise kernels)."""
    t, d, e = tokens, m.d, 2  # bf16 bytes
    qkv = (m.heads + 2 * m.kv_heads) * m.head_dim
    per_layer = (km.gemm(t, qkv, d) + km.gemm(t, d, m.heads * m.head_dim)
                 + km.gemm(t, m.ffn * (2 if m.gated else 1), d) + km.gemm(t, d, m.ffn))
    per_layer += (km.decode(1, context, m.heads, m.kv_heads, m.head_dim) if decode
                  else km.prefill(1, t, m.heads, m.kv_heads, m.head_dim))
    moved = [2 * t * d * e, 2 * t * d * e, 2 * t * qkv * e, 3 * t * m.ffn * e, 3 * t * d * e, 3 * t * d * e]
    per_layer += sum(km.elementwise(b) for b in moved)  # 2 norms, rotary, activation, 2 residual adds
    head = km.gemm(1, m.vocab, d) + km.elementwise(2 * d * e)  # final norm and logits of the last token
    return float(m.layers * per_layer + head)


def published() -> list[dict]:
    """Batch-1 figures on the A100 whose source states them (cited exactly in docs/benchmarks.md)."""
    km = KernelModel(load_kernel_tables(tables_dir() / "a100"), load_hardware("a100"))
    trt = "TensorRT-LLM docs/source/performance.md, 'Low Latency', A100 FP16, TRT-LLM v0.5"
    rows = []
    for m, isl, ms in ((GPTJ_6B, 128, 12), (GPTJ_6B, 2048, 129), (LLAMA_7B, 128, 16), (LLAMA_7B, 2048, 133)):
        rows.append({"model": m.name, "what": f"1st-token latency, {isl}-token prompt", "published_ms": ms,
                     "source": trt, "kernel_sum_ms": 1e3 * kernel_sum(km, m, isl, isl, False)})
    steps = [kernel_sum(km, LLAMA_7B, 1, 5 + i, True) for i in range(200)]  # gpt-fast: 5-token prompt, 200 new
    rows.append({"model": "Llama-2-7B", "what": "decode, ms per token (104.9 tokens/s)",
                 "published_ms": 1e3 / 104.9, "source": "gpt-fast README, 'Benchmarks' (A100-80GB at 330 W, bf16)",
                 "kernel_sum_ms": 1e3 * float(np.mean(steps))})
    return rows


def fmt(e: dict) -> str:
    return f"{e['within_10']:.0%} | {e['median']:.1%} | {e['p90']:.1%}"


def markdown(r: dict, seeds: int) -> str:
    lines = [f"Held-out grid points (a random tenth of each table, {seeds} seeds; the 'hwnas shapes' "
             "columns: GEMM m, k <= 4,096; attention batch <= 8, length <= 4,096):", "",
             "| GPU | table | held out per seed | within ±10% | median error | 90th pct "
             "| hwnas shapes: within ±10% | median |",
             "|---|---|---|---|---|---|---|---|"]
    for gpu, tables in r["held_out"].items():
        for name, e in tables.items():
            lines.append(f"| {gpu} | {name} | {e['all']['n'] // seeds} | {fmt(e['all'])} | "
                         f"{e['hwnas']['within_10']:.0%} | {e['hwnas']['median']:.1%} |")
    c = r["cross_framework"]
    lines += ["", f"The A100's bf16 GEMM in two frameworks ({c['points']} common points):", "",
              "| compared | within ±10% | median difference | 90th pct | median ratio - 1 |", "|---|---|---|---|---|"]
    for name in ("sglang vs vllm (raw)", "model (vllm, monotone) vs sglang"):
        e = c[name]
        lines.append(f"| {name} | {fmt(e)} | {e['bias']:+.1%} |")
    if r["cross_framework_attention"]:
        lines += ["", "The A100's attention in three frameworks (head size 128; vLLM's is the shipped table):", "",
                  "| compared | common shapes | within ±10% | median difference | median ratio - 1 | "
                  "under 30 us: within ±10% | median ratio - 1 |", "|---|---|---|---|---|---|---|"]
        for name, e in r["cross_framework_attention"].items():
            a, s = e["all"], e["under 30 us"]
            lines.append(f"| {name} | {a['n']} | {a['within_10']:.0%} | {a['median']:.1%} | {a['bias']:+.1%} | "
                         f"{s['within_10']:.0%} | {s['bias']:+.1%} |")
    lines += ["", "Head sizes predicted from the 128 tables (within ±10% / median ratio - 1; the model's rule, "
              "then the alternatives):", "",
              "| GPU, table | shapes | the model's rule | batch x d/128 | heads x d/128 | no correction |",
              "|---|---|---|---|---|---|"]
    for name, rules in r["head_size"].items():
        cells = " | ".join(f"{e['within_10']:.0%} / {e['bias']:+.1%}" for e in rules.values())
        lines.append(f"| {name} | {rules['used']['n']} | {cells} |")
    lines += ["", "| model | figure | published | kernel sum (preview) | source |", "|---|---|---|---|---|"]
    for p in r["published"]:
        lines.append(f"| {p['model']} | {p['what']} | {p['published_ms']:.3g} ms | {p['kernel_sum_ms']:.3g} ms | "
                     f"{p['source']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--wheel", type=Path, help="the aiconfigurator-core wheel: also check head sizes 192 and 256, "
                    "and the A100's attention across frameworks")
    args = ap.parse_args()
    results = {"held_out": tables_held_out(args.seeds), "cross_framework": cross_framework(),
               "cross_framework_attention": cross_framework_attention(args.wheel) if args.wheel else {},
               "head_size": head_size_rule(args.wheel), "published": published(),
               "command": f"python bench/gpu_kernels.py --seeds {args.seeds}"
                          + (f" --wheel {args.wheel.name}" if args.wheel else "")}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(results, args.seeds)
    (OUT / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
