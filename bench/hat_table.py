"""The HAT-style table on this CPU: for several latency budgets, the searched arch after retraining
beside the largest arch and a hand-designed baseline, all retrained alike: loss on the **test**
split (and for translation BLEU and chrF on it), measured latency as raw wall clock and on the
dataset's reference-normalised scale (one interleaved group with the reference arch), parameters.
The searches select on the validation split, at 90% confidence on the calibrated predictor.

    python bench/hat_table.py --supernet configs/supernets/lm-shakespeare --budgets 30ms 40ms 60ms \
        --out bench/results/hat_table
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
    ap.add_argument("--supernet", default="configs/supernets/lm-shakespeare")
    ap.add_argument("--budgets", nargs="+", default=["30ms", "40ms", "60ms"])
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
    from nas import api
    for b in args.budgets:
        with tempfile.TemporaryDirectory() as tmp:
            res = api.search(hw, b, space=space, supernet=args.supernet, iterations=args.iterations, out=tmp,
                             options={"population": 40, "sample_size": 10}, progress=False)
        picks[f"searched, budget {b}"] = res.best_arch
        print(f"budget {b}: {res.best_arch.id} ({res.best_arch.precision}) val loss {res.best['loss']:.4f}", flush=True)
    translation = space.kind == "encoder-decoder"
    cfg = resolve_config(None, "translation" if translation else "lm", steps=args.retrain_steps, seq_len=128,
                         lr=1e-3, warmup=30, seed=0)
    td = load_task_data(record.task, record.data, max_len=space.max_len, seq_len=cfg.seq_len,
                        batch_size=cfg.batch_size, eval_batches=None, split="test")  # the whole test split
    train, test = td.train, td.val  # the held-out batches: the test split here
    if translation:
        test_pairs = evenly_spaced(parallel_corpus(record.data).test, args.bleu_pairs)
    rows = {}
    for name, arch in picks.items():
        model = extract(sup, arch)
        inherited = Evaluator(model, test).loss(arch)
        train_fixed(model, train, cfg)
        rows[name] = {"arch_id": arch.id, "arch": arch.to_dict(), "params": analytic_cost(arch).params,
                      "test_loss_inherited": inherited, "test_loss_retrained": Evaluator(model, test).loss(arch),
                      "predicted_s": float(lat.predict([arch])[0][0]), "precision": arch.precision}
        if translation:
            sc = score_translation(arch, model.weights(), test_pairs)
            rows[name].update(bleu=sc.bleu, chrf=sc.chrf, bleu_pairs=sc.sentences)
        print(name, rows[name]["test_loss_retrained"], rows[name].get("bleu"), flush=True)
    # measure every pick in one interleaved group with the reference arch (quiet machine wanted)
    torch.set_num_threads(hw.threads or 1)
    timings = measure(list(picks.values()), space.workload, hw.name, TimingProtocol(rounds=9, extra_rounds=8))
    scale = None
    for (name, row), t in zip(rows.items(), timings):
        row.update(measured_raw_s=t.raw_s, measured_s=t.seconds, spread=t.spread)
        scale = t.scale
    largest = rows["largest"]
    for row in rows.values():
        row["speedup_vs_largest"] = largest["measured_raw_s"] / row["measured_raw_s"]  # one group: same moment
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "hat_table.json").write_text(json.dumps({"args": vars(args), "rows": rows, "seconds": time.time() - t0,
                                                    "latency_source": lat.source, "measured_scale": scale}, indent=2))
    quality = "BLEU | chrF | test loss" if translation else "test loss (retrained) | ppl"
    print(f"| arch | {quality} | measured, raw wall clock | dataset scale | predicted | speed-up vs largest | params |")
    print("|---|---|---|---|---|---|---|---|" + ("---|" if translation else ""))
    for name, r in rows.items():
        q = (f"{r['bleu']:.2f} | {r['chrf']:.2f} | {r['test_loss_retrained']:.4f}" if translation else
             f"{r['test_loss_retrained']:.4f} | {math.exp(r['test_loss_retrained']):.2f}")
        print(f"| {name} ({r['precision']}) | {q} | {r['measured_raw_s'] * 1e3:.1f} ms | {r['measured_s'] * 1e3:.1f} ms | "
              f"{r['predicted_s'] * 1e3:.1f} ms | {r['speedup_vs_largest']:.2f}x | {r['params'] / 1e6:.2f}M |")


if __name__ == "__main__":
    main()
