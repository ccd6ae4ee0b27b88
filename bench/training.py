"""Training throughput by device, precision and number of processes.

1. precision: tokens/s of a supernet training step (sandwich: largest, smallest, 2 random archs) of
   `lm-shakespeare` in fp32, bf16 and fp16 autocast, interleaved rounds on the same machine, medians.
2. processes: tokens/s of `torchrun --nproc_per_node 1` against `--nproc_per_node 2` (gloo on the CPU,
   NCCL on GPUs), same global batch: on a 2-core CPU a correctness-at-scale figure, not a speed claim.
3. GPU (when present): the same for `lm-shakespeare` and `gpt2-small`, and the search's fitness
   throughput (archs scored per second with inherited weights).

    python bench/training.py --out bench/results/training            # quiet machine wanted
Results: training.json in --out; the tables go to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from space import load_space  # noqa: E402
from supernet.config import TrainConfig  # noqa: E402
from supernet.device import autocast, grad_scaler, resolve_device  # noqa: E402
from supernet.loss import lm_loss  # noqa: E402
from supernet.model import SuperTransformer  # noqa: E402
from supernet.train import step_archs  # noqa: E402


def step_rate(space, device, precisions, batch: int, seq: int, rounds: int, steps: int) -> dict:
    """Tokens/s of sandwich steps per precision, interleaved, medians of `rounds`."""
    model = SuperTransformer(space).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    cfg = TrainConfig(batch_size=batch, seq_len=seq)
    x = torch.randint(0, min(256, space.vocab_size - 3), (batch, seq + 1), device=device)
    times: dict[str, list[float]] = {p: [] for p in precisions}
    for r in range(rounds + 1):  # round 0 warms up
        for prec in (precisions if r % 2 else precisions[::-1]):
            scaler = grad_scaler(device, prec)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for s in range(steps):
                opt.zero_grad(set_to_none=True)
                for arch in step_archs(space, cfg, s):
                    with autocast(device, prec):
                        loss = lm_loss(model(x[:, :-1], arch), x[:, 1:])
                    scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if r:
                times[prec].append(steps * batch * seq / (time.perf_counter() - t0))
    return {p: {"tokens_per_s": statistics.median(v), "spread": (max(v) - min(v)) / statistics.median(v)}
            for p, v in times.items()}


DRIVER = """
import sys, time
from nas import api
out, steps, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t0 = time.perf_counter()
res = api.train_supernet("lm-shakespeare", out=out, steps=steps, batch_size=batch, seq_len=128, lr=3e-3,
                         settings={"eval_every": 10**6, "ckpt_every": 10**6, "warmup": 5}, progress=False)
print("RATE", res.record.log[-1]["tokens_per_s"] if res.record.log else 0, time.perf_counter() - t0)
"""


def process_rate(ranks: int, steps: int, batch: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "drive.py").write_text(DRIVER)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "drive.py", "out",
               str(steps), str(batch)]
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // ranks))}
        r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=env, timeout=3600)
        line = next(l for l in r.stdout.splitlines() if l.startswith("RATE"))
        rate, seconds = map(float, line.split()[1:])
    return {"ranks": ranks, "tokens_per_s": rate, "seconds": seconds, "steps": steps, "global_batch": batch}


def fitness_rate(space, device, n: int = 64) -> dict:
    from supernet.evaluate import Evaluator
    model = SuperTransformer(space).to(device)
    val = [(torch.randint(0, 250, (32, 128)), torch.randint(0, 250, (32, 128))) for _ in range(4)]
    ev = Evaluator(model, val)
    archs = [space.sample(i) for i in range(n)]
    ev.losses(archs[:2])
    t0 = time.perf_counter()
    ev.losses(archs[2:])
    return {"archs_per_s": (n - 2) / (time.perf_counter() - t0), "tokens_per_arch": ev.tokens}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--precisions", nargs="+", choices=["fp32", "bf16", "fp16"], default=None)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--ddp-steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench/results/training")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device("auto")
    res: dict = {"device": str(dev), "torch": torch.__version__, "threads": torch.get_num_threads()}
    lm = load_space("lm-shakespeare")
    # fp16 autocast on a CPU has no fast kernels (nor has bf16 on an AVX2-only CPU, 9x slower than
    # fp32 on the EPYC): timed on CUDA devices only unless asked
    precisions = args.precisions or (["fp32", "bf16", "fp16"] if dev.type == "cuda" else ["fp32", "bf16"])
    res["precision_lm"] = step_rate(lm, dev, precisions, 16, 128, args.rounds, args.steps)
    print("precision", json.dumps(res["precision_lm"]), flush=True)
    res["processes"] = [process_rate(n, args.ddp_steps, 16) for n in (1, 2)]
    print("processes", json.dumps(res["processes"]), flush=True)
    if dev.type == "cuda":
        res["gpu_name"] = torch.cuda.get_device_name(dev)
        res["precision_gpt2"] = step_rate(load_space("gpt2-small"), dev, ["fp32", "bf16"], 8, 1024, args.rounds, 2)
        res["fitness_lm"] = fitness_rate(lm, dev)
    (out / "training.json").write_text(json.dumps({"args": vars(args), **res}, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
