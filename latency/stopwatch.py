"""Times an exported model the way a user would: load the folder, run its card's workload, read
the wall clock. `nas measure` runs this module in a process of its own, so nothing of the calling
process (its threads, its warm caches, a loaded supernet) colours the figure.

    python -m latency.stopwatch MODEL_DIR --workload batch=1,len=64,gen=32 --threads 1 --device cpu
prints one JSON line: median_s, spread (relative IQR), samples, device_name, threads, workload; for
a generation workload also prefill_s (median time to first token, timed on its own, interleaved
with the whole runs) and decode_per_token_s ((median_s - prefill_s) / the tokens decoded after it).
"""
from __future__ import annotations

import argparse
import json
import statistics


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--workload", required=True)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--backend", default="torch")
    args = ap.parse_args(argv)
    import torch

    from latency.protocol import cpu_timer, cuda_timer, relative_iqr
    from latency.runner import build, device_metadata
    from space import Workload
    from supernet.subnet import load
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load(args.model)
    w = Workload.parse(args.workload)
    run = build(model.arch, w, args.device, backend=args.backend, model=model)
    phases = w.generation and model.arch.kind != "encoder" and args.backend == "torch"
    first = build(model.arch, w, args.device, model=model, prefill_only=True) if phases else None
    timer = cuda_timer if args.device.startswith("cuda") else cpu_timer
    for _ in range(args.warmup):
        run()
        if first is not None:
            first()
    samples, prefill = [], []
    for _ in range(args.rounds):  # interleaved: a drift of the machine's speed touches both alike
        samples.append(timer(run, 1))
        if first is not None:
            prefill.append(timer(first, 1))
    meta = device_metadata(args.device)
    out = {"median_s": statistics.median(samples), "spread": relative_iqr(samples), "samples": samples,
           "device_name": meta["device_name"], "threads": meta["threads"], "workload": str(w),
           "backend": args.backend}
    if first is not None:
        after = w.gen_tokens - (1 if model.arch.kind == "encoder-decoder" else 0)  # tokens decoded after the first call
        out["prefill_s"] = statistics.median(prefill)
        out["decode_per_token_s"] = max(0.0, out["median_s"] - out["prefill_s"]) / after if after else 0.0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
