"""The kernel-level GPU latency model (latency/gpu.py, issue 23 stage 2) checked without a device:

(a) published end-to-end figures of known models on the A100, each predicted for an hwnas arch of
    that model's shape through hwnas's own kernel list (space/kernels.py) in both runtimes;
(b) the main job (`nas search --hardware GPU --latency-budget 20ms`, its defaults) on the A100, H100
    and H200 in both runtimes: the answer, its predicted latency and the range of the kernel
    model's constants, beside the analytic roofline's point and range for the same arch (what the
    main job answered with before).

    python bench/gpu_model.py [--skip-search]

Writes bench/results/gpu_model/results.json and results.md (the tables of docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency.gpu import GpuLatency, roofline_seconds  # noqa: E402
from latency.hardware import RUNTIMES, load_hardware  # noqa: E402
from latency.kernels import kernel_model  # noqa: E402
from space import Arch, Layer, Stack, Workload, analytic_cost, load_space  # noqa: E402

GPUS = ("a100", "h100", "h200")
OUT = Path(__file__).resolve().parent / "results" / "gpu_model"
TRT = "TensorRT-LLM docs/source/performance.md, 'Low Latency', A100 FP16, TRT-LLM v0.5"
GPT_FAST = "gpt-fast README, 'Benchmarks' (A100-80GB at 330 W, bf16)"


def decoder(layers: int, d: int, heads: int, kv: int, head_dim: int, ffn: int, vocab: int, max_len: int) -> Arch:
    layer = Layer("softmax", heads, kv, ffn)
    return Arch(kind="decoder", head_dim=head_dim, vocab_size=vocab, max_len=max_len,
                decoder=Stack(d, (layer,) * layers), precision="fp16", positions="rope")


# hwnas's FFN has two matrices: LLaMA's SwiGLU (3 x 4096 x 11008) is an FFN of 16,512 with the same
# GEMM work; GPT-J's parallel attention + MLP block runs the same GEMMs one after the other here.
GPTJ_6B = ("GPT-J 6B", dict(layers=28, d=4096, heads=16, kv=16, head_dim=256, ffn=16384, vocab=50400))
LLAMA_7B = ("LLaMA 7B", dict(layers=32, d=4096, heads=32, kv=32, head_dim=128, ffn=16512, vocab=32000))


def published() -> list[dict]:
    """Batch-1 A100 figures whose sources state them (cited in docs/benchmarks.md), predicted per runtime."""
    hw = load_hardware("a100")
    km = kernel_model(hw)
    rows = []
    for (name, shape), isl, ms in ((GPTJ_6B, 128, 12), (GPTJ_6B, 2048, 129), (LLAMA_7B, 128, 16),
                                   (LLAMA_7B, 2048, 133)):
        arch = decoder(**shape, max_len=4096)
        w = Workload(1, isl, 1)  # the prompt's prefill is the first token's latency
        gl = GpuLatency(km, w)
        pred = {r: 1e3 * float(gl.invocation_seconds([arch], r)[0][0]) for r in RUNTIMES}
        rows.append({"model": name, "what": f"1st-token latency, {isl}-token prompt", "published_ms": ms,
                     "source": TRT, **{f"{r}_ms": v for r, v in pred.items()}})
    name, shape = LLAMA_7B
    arch = decoder(**shape, max_len=4096)
    gl = GpuLatency(km, Workload(1, 5, 200))  # gpt-fast: a 5-token prompt, 200 new tokens
    pred = {r: 1e3 * float(np.mean(gl.invocation_seconds([arch], r)[0][1:])) for r in RUNTIMES}
    rows.append({"model": "Llama-2-7B", "what": "decode, ms per token (104.9 tokens/s)", "published_ms": 1e3 / 104.9,
                 "source": GPT_FAST, **{f"{r}_ms": v for r, v in pred.items()}})
    for r in rows:
        r["cuda-graphs_error"] = r["cuda-graphs_ms"] / r["published_ms"] - 1
    return rows


def analytic(arch: Arch, workload: Workload, hw, runtime: str) -> dict:
    """The analytic roofline's point and range for `arch` under `runtime` (the model before stage 2)."""
    return {end: 1e3 * roofline_seconds(arch, workload, hw, runtime, end) for end in ("fast", "point", "slow")}


def answers() -> list[dict]:
    from nas import api
    from latency.model import latency_model
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for gpu in GPUS:
            for runtime in RUNTIMES:
                t0 = time.perf_counter()
                run = api.search(gpu, "20ms", runtime=runtime, out=Path(tmp) / f"{gpu}-{runtime}", reuse=False,
                                 progress=False)
                seconds = time.perf_counter() - t0
                best = run.ranking[0]
                hw = load_hardware(gpu).with_runtime(runtime)
                space = load_space("lm-shakespeare")
                arch = Arch.from_json(best["arch"])
                model = latency_model(hw, space, space.workload)
                fast, slow = model.predict_range([arch])
                point = float(model.predict([arch])[0][0])
                rows.append({"gpu": gpu, "runtime": runtime, "answer": best["arch_id"], "loss": best["loss"],
                             "loss_tokens": best["tokens"], "precision": arch.precision,
                             "layout": f"{arch.decoder.embed}x{arch.decoder.depth}",
                             "params": int(analytic_cost(arch, space.workload).params),
                             "predicted_ms": 1e3 * point, "fast_ms": 1e3 * float(fast[0]),
                             "slow_ms": 1e3 * float(slow[0]), "bound_ms": 1e3 * best["latency_bound_s"],
                             "budget_used": best["latency_bound_s"] / 0.020, "source": run.record.latency_source,
                             "analytic": analytic(arch, space.workload, hw, runtime), "search_s": seconds})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(r: dict) -> str:
    lines = ["Published A100 figures (batch 1) against an hwnas arch of each model's shape, predicted per runtime:", "",
             "| model | figure | published | eager | cuda-graphs | cuda-graphs vs published | source |",
             "|---|---|---|---|---|---|---|"]
    for p in r["published"]:
        lines.append(f"| {p['model']} | {p['what']} | {p['published_ms']:.3g} ms | {p['eager_ms']:.3g} ms | "
                     f"{p['cuda-graphs_ms']:.3g} ms | {p['cuda-graphs_error']:+.0%} | {p['source']} |")
    if r.get("answers"):
        lines += ["", "The main job (`nas search --hardware GPU --latency-budget 20ms [--runtime R]`, lm-shakespeare, "
                  "prompt 64 + 32 decoded, batch 1):", "",
                  "| GPU | runtime | answer | layout | precision | val loss (bytes) | kernel model: predicted (range) | "
                  "bound, budget used | analytic roofline for the same arch: point (range) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for a in r["answers"]:
            an = a["analytic"]
            lines.append(f"| {a['gpu']} | {a['runtime']} | `{a['answer']}` | {a['layout']} | {a['precision']} | "
                         f"{a['loss']:.4f} ({a['loss_tokens']:,}) | {a['predicted_ms']:.2f} ms "
                         f"({a['fast_ms']:.2f}-{a['slow_ms']:.2f}) | {a['bound_ms']:.2f} ms, {a['budget_used']:.0%} | "
                         f"{an['point']:.2f} ms ({an['fast']:.2f}-{an['slow']:.2f}) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-search", action="store_true", help="only the published figures (seconds)")
    args = ap.parse_args()
    results = {"published": published(), "answers": [] if args.skip_search else answers(),
               "command": "python bench/gpu_model.py" + (" --skip-search" if args.skip_search else "")}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(results)
    (OUT / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
