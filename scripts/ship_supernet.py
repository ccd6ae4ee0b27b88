"""Packs a trained supernet into the package (configs/supernets/SPACE/): the weights alone in
float16 with its record (no optimizer state), its training log, the exact command that trained it,
and check.json: the validation loss of the largest and smallest arch on a fixed batch, computed
from the shipped float16 weights, which tests/test_shipped.py recomputes.

    python scripts/ship_supernet.py runs/supernet-lm-shakespeare-ship --command "nas train-supernet ..." \\
        --hours 1.2 --machine "xeon-2vcpu, 1 thread"
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def check_batch(record):
    """The fixed batch: the first validation batch of the supernet's own data and settings."""
    from supernet.tasks import supernet_task_data
    return supernet_task_data(record, eval_batches=1).val


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("supernet")
    ap.add_argument("--command", required=True, help="the exact command that trained it")
    ap.add_argument("--hours", type=float, required=True, help="wall-clock training time")
    ap.add_argument("--machine", required=True)
    ap.add_argument("--adopt-space", action="store_true",
                    help="record today's definition of the space when the weights fit it (a supernet "
                         "trained before a weightless dimension such as precision was added)")
    args = ap.parse_args()
    from configs import config_dir
    from supernet.checkpoint import FILE, load_supernet, ship
    from supernet.train import evaluate_loss
    from space import load_space
    model, record = load_supernet(args.supernet)
    space = model.space
    adopted = ""
    if args.adopt_space:
        today = load_space(space.name)
        if today.to_dict() != record.space:
            changed = sorted(k for k in set(record.space) | set(today.to_dict())
                             if record.space.get(k) != today.to_dict().get(k))
            adopted = (f"\n- Trained on an earlier definition of the space; the shipped record adopts today's "
                       f"(changed: {', '.join(changed)}; the weights load strictly into it)")
        space = today
    out = config_dir() / "supernets" / space.name
    out.mkdir(parents=True, exist_ok=True)
    ship(args.supernet, out, space if args.adopt_space else None)
    shipped, rec = load_supernet(out)
    batch = check_batch(rec)
    check = {"batch": "the first validation batch of the supernet's data", "step": rec.step,
             "largest": evaluate_loss(shipped, space.largest(), batch),
             "smallest": evaluate_loss(shipped, space.smallest(), batch),
             "largest_fp32_weights": evaluate_loss(model, space.largest(), batch)}
    (out / "check.json").write_text(json.dumps(check, indent=2) + "\n")
    shutil.copy(Path(args.supernet) / "log.csv", out / "log.csv")
    last = rec.log[-1]
    size = (out / FILE).stat().st_size / 2**20
    (out / "README.md").write_text(f"""# Pre-trained SuperTransformer: {space.name}

What `nas search` uses when you have not trained your own (`nas train-supernet` and `--supernet DIR`
stay for your data). Weights in float16 ({size:.1f} MB, loaded as float32), no optimizer state.

- Trained with: `{args.command}`
- {rec.step} steps, {args.hours:.1f} hours on {args.machine}; settings: {json.dumps(rec.train.to_dict())}
- Validation loss at the end (nats/byte, {rec.train.eval_batches} batches of {rec.train.batch_size} windows of {rec.train.seq_len} bytes of the validation plays):
  largest arch {last['val_largest']:.4f}, smallest {last['val_smallest']:.4f}
- `log.csv`: the training log; `check.json`: losses on a fixed batch, from these float16 weights{adopted}
""")
    print(json.dumps(check, indent=2), f"{size:.1f} MB", out)


if __name__ == "__main__":
    main()
