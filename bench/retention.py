"""Does a decay fix linear attention at long context? The all-linear archs of the long-context
ranking (bench/results/ranking_long/archs.json) with every layer switched to retention (linear
attention with a fixed per-K/V-head decay, supernet/attention/retention.py), each trained alone with
the ranking's recipe (500 steps of 2 windows of 2,048 bytes, lr 3e-3, seed 0) and scored on the test
split at 2,048 bytes, beside the same archs' linear and the window archs' results.

    python bench/retention.py --threads 2 [--ids ID ...]

Results (resumable, one arch after another) in bench/results/ranking_long/retention.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from space import Arch, analytic_cost  # noqa: E402
from space.files import atomic_write_text  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "ranking_long"


def as_retention(arch: Arch) -> Arch:
    layers = tuple(dataclasses.replace(la, attn="retention") for la in arch.decoder.layers)
    return dataclasses.replace(arch, decoder=dataclasses.replace(arch.decoder, layers=layers))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--ids", nargs="*", default=None, help="only these linear archs (default: all)")
    args = ap.parse_args()
    import torch
    from bench.ranking import test_and_val
    from supernet.evaluate import Evaluator
    from supernet.subnet import SubTransformer
    from supernet.train import TrainConfig, train_fixed
    torch.set_num_threads(args.threads)
    designed = json.loads((OUT / "archs.json").read_text())
    alone = json.loads((OUT / "standalone.json").read_text())
    linear = [(d["id"], Arch.from_dict(d["arch"])) for d in designed if d["pattern"] == "linear"
              and (not args.ids or d["id"] in args.ids)]
    linear.sort(key=lambda t: analytic_cost(t[1]).flops)
    path = OUT / "retention.json"
    done = json.loads(path.read_text()) if path.exists() else {}
    train, val, test = test_and_val(2048)
    for source_id, arch in linear:
        if source_id in done:
            continue
        r = as_retention(arch)
        first = alone[source_id]["0"]
        cfg = TrainConfig(steps=args.steps, batch_size=first["batch_size"], seq_len=first["seq_len"], lr=first["lr"],
                          warmup=50, seed=0, eval_every=10**9, ckpt_every=10**9)
        t = time.time()
        model = SubTransformer(r).reset_parameters(0)
        losses = train_fixed(model, train, cfg)
        done[source_id] = {"retention_id": r.id, "test": Evaluator(model, test).loss(r),
                           "val": Evaluator(model, val).loss(r), "train_last50": sum(losses[-50:]) / 50,
                           "seconds": time.time() - t, "linear_test": first["test"], "steps": args.steps,
                           "threads": args.threads}
        atomic_write_text(path, json.dumps(done, indent=1))
        print(f"{source_id} -> retention {r.id}: test {done[source_id]['test']:.4f} (linear {first['test']:.4f}; "
              f"{done[source_id]['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
