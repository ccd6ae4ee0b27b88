"""The HAT-style table on this CPU: for several latency budgets, the searched arch after retraining
beside the largest arch and a hand-designed baseline, all retrained alike: validation loss,
measured latency (one interleaved group with the reference arch, so the machine's drift cancels),
parameters.

    python bench/hat_table.py --budgets 40ms 60ms 90ms --out bench/results/hat_table
Results: hat_table.json in --out; the table goes to docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency.dataset import read_dataset  # noqa: E402
from latency.hardware import load_hardware  # noqa: E402
from latency.model import latency_model  # noqa: E402
from latency.profile import reference_arch, time_group  # noqa: E402
from latency.protocol import TimingProtocol  # noqa: E402
from latency.store import find_dataset  # noqa: E402
from nas.search import parse_duration, run_search  # noqa: E402
from nas.supernet_cli import lm_data, supernet_evaluator  # noqa: E402
from space import Arch, Layer, Stack, analytic_cost, load_space  # noqa: E402
from supernet.evaluate import Evaluator  # noqa: E402
from supernet.subnet import extract  # noqa: E402
from supernet.train import TrainConfig, load_supernet, train_fixed  # noqa: E402


def hand_designed(space) -> Arch:
    """What one would pick by habit: 4 layers of 192, full softmax attention, 4 heads, FFN 4x."""
    layer = Layer("softmax", 4, 4, 768)
    return space.require(Arch(space.kind, space.head_dim, space.vocab_size, space.max_len,
                              decoder=Stack(192, (layer,) * 4)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hardware", default="xeon-2vcpu")
    ap.add_argument("--space", default="lm-shakespeare")
    ap.add_argument("--supernet", default="runs/supernet-lm-shakespeare")
    ap.add_argument("--budgets", nargs="+", default=["40ms", "60ms", "90ms"])
    ap.add_argument("--iterations", type=int, default=160)
    ap.add_argument("--retrain-steps", type=int, default=300)
    ap.add_argument("--out", default="bench/results/hat_table")
    args = ap.parse_args()
    torch.set_num_threads(2)
    space, hw = load_space(args.space), load_hardware(args.hardware)
    lat = latency_model(hw, space, space.workload)
    ev, _ = supernet_evaluator(args.supernet, 2)
    sup, ck = load_supernet(args.supernet)
    t0 = time.time()
    picks: dict[str, Arch] = {"largest": space.largest(), "hand-designed (4x192 softmax)": hand_designed(space)}
    for b in args.budgets:
        with tempfile.TemporaryDirectory() as tmp:
            res = run_search(space, "evolution", evaluate=ev.losses, latency=lambda a: [float(s) for s in lat.predict(a)[0]],
                             budget_s=parse_duration(b), iterations=args.iterations, batch=8, run_dir=Path(tmp), seed=0,
                             options={"population": 40, "sample_size": 10}, hardware=hw.name)
        picks[f"searched, budget {b}"] = res.best_arch
        print(f"budget {b}: {res.best_arch.id} loss {res.best['loss']:.4f}", flush=True)
    cfg = TrainConfig(steps=args.retrain_steps, batch_size=16, seq_len=128, lr=1e-3, warmup=30, seed=0)
    train, val, _ = lm_data(ck["meta"].get("data"), cfg.seq_len, cfg.batch_size, 8)
    rows = {}
    for name, arch in picks.items():
        model = extract(sup, arch)
        inherited = Evaluator(model, val).loss(arch)
        train_fixed(model, train, cfg)
        rows[name] = {"arch_id": arch.id, "arch": arch.to_dict(), "params": analytic_cost(arch).params,
                      "val_loss_inherited": inherited, "val_loss_retrained": Evaluator(model, val).loss(arch),
                      "predicted_s": float(lat.predict([arch])[0][0])}
        print(name, rows[name]["val_loss_retrained"], flush=True)
    # measure every pick in one interleaved group with the reference arch (quiet machine wanted)
    torch.set_num_threads(hw.threads or 1)
    archs = list(picks.values())
    timings, _ = time_group(archs, space.workload, "cpu", TimingProtocol(rounds=9, extra_rounds=8), hw.threads,
                            reference=reference_arch(space))
    data = read_dataset(find_dataset(hw.name))
    scale = data.ref_s.median()
    for (name, row), t in zip(rows.items(), timings):
        row.update(measured_raw_s=t.median, measured_s=t.ratio * scale, spread=t.spread)
    largest = rows["largest"]
    for row in rows.values():
        row["speedup_vs_largest"] = largest["measured_s"] / row["measured_s"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "hat_table.json").write_text(json.dumps({"args": vars(args), "rows": rows, "seconds": time.time() - t0,
                                                    "latency_source": lat.source, "dataset_scale_s": scale}, indent=2))
    print("| arch | val loss (retrained) | ppl | measured latency | predicted | speed-up vs largest | params |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['val_loss_retrained']:.4f} | {math.exp(r['val_loss_retrained']):.2f} | "
              f"{r['measured_s'] * 1e3:.1f} ms | {r['predicted_s'] * 1e3:.1f} ms | {r['speedup_vs_largest']:.2f}x | "
              f"{r['params'] / 1e6:.2f}M |")


if __name__ == "__main__":
    main()
