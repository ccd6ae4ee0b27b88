"""The HAT-style table on this CPU: for several latency budgets, the searched arch after retraining
beside the largest arch and a hand-designed baseline, all retrained alike: validation loss (and for
translation BLEU and chrF on the test split), measured latency (one interleaved group with the
reference arch, so the machine's drift cancels), parameters.

    python bench/hat_table.py --budgets 40ms 60ms 90ms --out bench/results/hat_table
    python bench/hat_table.py --space folio-translation --supernet bench/results/supernet-folio \
        --budgets 60ms 90ms --out bench/results/hat_table_folio
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

from latency.hardware import load_hardware  # noqa: E402
from latency.measure import measure  # noqa: E402
from latency.model import latency_model  # noqa: E402
from latency.protocol import TimingProtocol  # noqa: E402
from nas.api import load_supernet, supernet_evaluator  # noqa: E402
from nas.search import parse_duration, run_search  # noqa: E402
from space import Arch, Layer, Stack, analytic_cost, load_space  # noqa: E402
from supernet.config import resolve_config  # noqa: E402
from supernet.evaluate import Evaluator  # noqa: E402
from supernet.subnet import extract  # noqa: E402
from supernet.tasks import evenly_spaced, load_task_data, parallel_corpus  # noqa: E402
from supernet.train import train_fixed  # noqa: E402
from supernet.translate import score_translation  # noqa: E402


def hand_designed(space) -> tuple[str, Arch]:
    """What one would pick by habit. Language model: 4 layers of 192, full softmax attention, 4 heads,
    FFN 4x. Translation: the same layers, 3 encoder + 3 decoder, cross-attention on the last encoder
    layer (the vanilla Transformer's wiring)."""
    layer = Layer("softmax", 4, 4, 768)
    if space.kind == "encoder-decoder":
        cross = Layer("softmax", 4, 4, 768, cross_layers=1, cross_heads=4)
        arch = Arch(space.kind, space.head_dim, space.vocab_size, space.max_len,
                    encoder=Stack(192, (layer,) * 3), decoder=Stack(192, (cross,) * 3))
        return "hand-designed (3+3 x 192 softmax)", space.require(arch)
    arch = Arch(space.kind, space.head_dim, space.vocab_size, space.max_len, decoder=Stack(192, (layer,) * 4))
    return "hand-designed (4x192 softmax)", space.require(arch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hardware", default="xeon-2vcpu")
    ap.add_argument("--space", default="lm-shakespeare")
    ap.add_argument("--supernet", default="runs/supernet-lm-shakespeare")
    ap.add_argument("--budgets", nargs="+", default=["40ms", "60ms", "90ms"])
    ap.add_argument("--iterations", type=int, default=160)
    ap.add_argument("--retrain-steps", type=int, default=300)
    ap.add_argument("--bleu-pairs", type=int, default=1000, help="Translation: test pairs translated (greedy).")
    ap.add_argument("--out", default="bench/results/hat_table")
    args = ap.parse_args()
    torch.set_num_threads(2)
    space, hw = load_space(args.space), load_hardware(args.hardware)
    lat = latency_model(hw, space, space.workload)
    sup, record = load_supernet(args.supernet)
    ev = supernet_evaluator(args.supernet, 2, (sup, record))
    t0 = time.time()
    hand_name, hand = hand_designed(space)
    picks: dict[str, Arch] = {"largest": space.largest(), hand_name: hand}
    for b in args.budgets:
        with tempfile.TemporaryDirectory() as tmp:
            res = run_search(space, "evolution", evaluate=ev.losses, latency=lambda a: [float(s) for s in lat.predict(a)[0]],
                             budget_s=parse_duration(b), iterations=args.iterations, batch=8, run_dir=Path(tmp), seed=0,
                             options={"population": 40, "sample_size": 10}, hardware=hw.name)
        picks[f"searched, budget {b}"] = res.best_arch
        print(f"budget {b}: {res.best_arch.id} loss {res.best['loss']:.4f}", flush=True)
    translation = space.kind == "encoder-decoder"
    cfg = resolve_config(None, "translation" if translation else "lm", steps=args.retrain_steps, seq_len=128,
                         lr=1e-3, warmup=30, seed=0)
    td = load_task_data(record.task, record.data, max_len=space.max_len, seq_len=cfg.seq_len,
                        batch_size=cfg.batch_size, eval_batches=8)
    train, val = td.train, td.val
    if translation:
        test_pairs = evenly_spaced(parallel_corpus(record.data).test, args.bleu_pairs)
    rows = {}
    for name, arch in picks.items():
        model = extract(sup, arch)
        inherited = Evaluator(model, val).loss(arch)
        train_fixed(model, train, cfg)
        rows[name] = {"arch_id": arch.id, "arch": arch.to_dict(), "params": analytic_cost(arch).params,
                      "val_loss_inherited": inherited, "val_loss_retrained": Evaluator(model, val).loss(arch),
                      "predicted_s": float(lat.predict([arch])[0][0])}
        if translation:
            sc = score_translation(arch, model.weights(), test_pairs)
            rows[name].update(bleu=sc.bleu, chrf=sc.chrf, bleu_pairs=sc.sentences)
        print(name, rows[name]["val_loss_retrained"], rows[name].get("bleu"), flush=True)
    # measure every pick in one interleaved group with the reference arch (quiet machine wanted)
    torch.set_num_threads(hw.threads or 1)
    timings = measure(list(picks.values()), space.workload, hw.name, TimingProtocol(rounds=9, extra_rounds=8))
    scale = None
    for (name, row), t in zip(rows.items(), timings):
        row.update(measured_raw_s=t.raw_s, measured_s=t.seconds, spread=t.spread)
        scale = t.scale
    largest = rows["largest"]
    for row in rows.values():
        row["speedup_vs_largest"] = largest["measured_s"] / row["measured_s"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "hat_table.json").write_text(json.dumps({"args": vars(args), "rows": rows, "seconds": time.time() - t0,
                                                    "latency_source": lat.source, "measured_scale": scale}, indent=2))
    quality = "BLEU | chrF | val loss" if translation else "val loss (retrained) | ppl"
    print(f"| arch | {quality} | measured latency | predicted | speed-up vs largest | params |")
    print("|---|---|---|---|---|---|---|" + ("---|" if translation else ""))
    for name, r in rows.items():
        q = (f"{r['bleu']:.2f} | {r['chrf']:.2f} | {r['val_loss_retrained']:.4f}" if translation else
             f"{r['val_loss_retrained']:.4f} | {math.exp(r['val_loss_retrained']):.2f}")
        print(f"| {name} | {q} | {r['measured_s'] * 1e3:.1f} ms | {r['predicted_s'] * 1e3:.1f} ms | "
              f"{r['speedup_vs_largest']:.2f}x | {r['params'] / 1e6:.2f}M |")


if __name__ == "__main__":
    main()
