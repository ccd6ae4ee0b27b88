"""Measures the roofline numbers of this machine for a hardware profile: peak FP32 matmul
throughput, memory bandwidth (a large copy) and the per-op overhead of PyTorch eager (a tiny add),
each as the median of interleaved rounds.

    python bench/machine_spec.py --threads 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    big = torch.empty(64 * 2**20 // 4)  # 64 MiB: far beyond the caches
    dst = torch.empty_like(big)
    tiny = torch.ones(8)

    def matmul() -> float:
        t = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        return 4 * 2 * 2048**3 / (time.perf_counter() - t)

    def copy() -> float:
        t = time.perf_counter()
        for _ in range(4):
            dst.copy_(big)
        return 4 * 2 * big.numel() * 4 / (time.perf_counter() - t)  # read + write

    def overhead() -> float:
        t = time.perf_counter()
        for _ in range(2000):
            torch.add(tiny, tiny)
        return (time.perf_counter() - t) / 2000

    results = {"matmul_flops": [], "copy_bytes_per_s": [], "op_overhead_s": []}
    for f in (matmul, copy, overhead):
        f()  # warm-up
    for _ in range(args.rounds):
        results["matmul_flops"].append(matmul())
        results["copy_bytes_per_s"].append(copy())
        results["op_overhead_s"].append(overhead())
    out = {k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in results.items()}
    out["threads"] = args.threads
    out["torch"] = torch.__version__
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
