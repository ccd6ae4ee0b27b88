"""Times an exported model the way a user would: load the folder, run its card's workload, read
the wall clock. `nas measure` runs this module in a process of its own, so nothing of the calling
process (its threads, its warm caches, a loaded supernet) colours the figure.

    python -m latency.stopwatch MODEL_DIR --workload batch=1,len=64,gen=32 --threads 1 --device cpu
prints one JSON line: median_s, spread (relative IQR), samples, device_name, threads, workload.
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
    timer = cuda_timer if args.device.startswith("cuda") else cpu_timer
    for _ in range(args.warmup):
        run()
    samples = [timer(run, 1) for _ in range(args.rounds)]
    meta = device_metadata(args.device)
    print(json.dumps({"median_s": statistics.median(samples), "spread": relative_iqr(samples), "samples": samples,
                      "device_name": meta["device_name"], "threads": meta["threads"], "workload": str(w),
                      "backend": args.backend}))


if __name__ == "__main__":
    main()
