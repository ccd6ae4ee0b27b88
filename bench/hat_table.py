"""The HAT-style table on this CPU: for several latency budgets, the searched arch beside the largest
arch and a hand-designed baseline, all retrained alike: loss on the **test** split (and for
translation BLEU and chrF on it), measured latency as raw wall clock and on the dataset's
reference-normalised scale (one interleaved group with the reference arch), parameters.
The searches select on the validation split, at 90% confidence on the calibrated predictor, from the
smallest budget up, each reusing the scores of the searches before (as `nas search` does).

Two ways to retrain, each arch alike (`--retrain`):
- `finetune`: from its inherited supernet weights, `--retrain-steps` steps at lr 1e-3;
- `scratch`: HAT's protocol, from random weights, `--scratch-steps` steps at lr 3e-3 (the ranking
  benchmark's stand-alone training, bench/ranking.py), so no arch profits from the supernet.

    python bench/hat_table.py --supernet configs/supernets/lm-shakespeare --budgets 30ms 40ms 60ms \
        --out bench/results/hat_table
    python bench/hat_table.py --space folio-translation --supernet bench/results/supernet-folio \
        --budgets 60ms 90ms --retrain finetune --out bench/results/hat_table_folio
`--stage train` searches and retrains (hours on 1 thread: run it beside other work); `--stage
measure` times the picks of a finished `train` stage, and needs a quiet machine. Results:
hat_table.json in --out (written after each arch: a killed run resumes); the table goes to
docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
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
from nas.api import load_supernet  # noqa: E402
from space import Arch, Layer, Stack, analytic_cost, load_space  # noqa: E402
from space.files import atomic_write_text  # noqa: E402
from supernet.config import resolve_config  # noqa: E402
from supernet.evaluate import Evaluator  # noqa: E402
from supernet.subnet import SubTransformer, extract  # noqa: E402
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


def search_picks(args, space, hw) -> dict[str, dict]:
    """name -> {arch, val loss, predicted, bound}: the largest, the hand-designed one, one per budget."""
    from nas import api
    from nas.search import parse_duration
    hand_name, hand = hand_designed(space)
    picks = {"largest": {"arch": space.largest().to_dict()}, hand_name: {"arch": hand.to_dict()}}
    with tempfile.TemporaryDirectory() as tmp:  # a score book of its own (main: HWNAS_HOME)
        for b in sorted(args.budgets, key=parse_duration):
            res = api.search(hw, b, space=space, supernet=args.supernet, iterations=args.iterations,
                             out=Path(tmp) / b, options={"population": 40, "sample_size": 10}, progress=False,
                             calibrate=not args.no_calibrate)
            best = res.best
            picks[f"searched, budget {b}"] = {"arch": res.best_arch.to_dict(), "val_loss_inherited": best["loss"],
                                             "predicted_s": best["latency_s"], "bound_s": best["latency_bound_s"],
                                             "reused": best["strategy"] == "reused",
                                             "calibration": dict(res.record.calibration)}
            print(f"budget {b}: {res.best_arch.id} ({res.best_arch.precision}) val loss {best['loss']:.4f}", flush=True)
    return picks


def train_stage(args, space, hw, out: Path, result: dict) -> None:
    sup, record = load_supernet(args.supernet)
    if "picks" not in result:
        result["picks"] = search_picks(args, space, hw)
        save(out, result)
    translation = space.kind == "encoder-decoder"
    task = "translation" if translation else "lm"
    td = load_task_data(record.task, record.data, max_len=space.max_len, seq_len=128,
                        batch_size=16, eval_batches=None, split="test")  # the whole test split
    train, test = td.train, td.val  # the held-out batches: the test split here
    test_pairs = evenly_spaced(parallel_corpus(record.data).test, args.bleu_pairs) if translation else None
    modes = {"finetune": resolve_config(None, task, steps=args.retrain_steps, seq_len=128, lr=1e-3, warmup=30, seed=0),
             "scratch": resolve_config(None, task, steps=args.scratch_steps, seq_len=128, lr=3e-3 if not translation
                                       else 1e-3, warmup=50, seed=0)}
    for name, row in result["picks"].items():
        arch = Arch.from_dict(row["arch"])
        row.update(arch_id=arch.id, params=analytic_cost(arch).params, precision=arch.precision)
        if "test_loss_inherited" not in row:
            row["test_loss_inherited"] = Evaluator(extract(sup, arch), test).loss(arch)
        for mode in args.retrain:
            if f"test_loss_{mode}" in row and row.get(f"{mode}_config") == modes[mode].to_dict():
                continue  # resumed: done before, alike
            t = time.time()
            model = extract(sup, arch) if mode == "finetune" else SubTransformer(arch).reset_parameters(0)
            train_fixed(model, train, modes[mode])
            row[f"test_loss_{mode}"] = Evaluator(model, test).loss(arch)
            row[f"{mode}_config"] = modes[mode].to_dict()
            row[f"{mode}_seconds"] = time.time() - t
            if translation:
                sc = score_translation(arch, model.weights(), test_pairs)
                row.update({f"bleu_{mode}": sc.bleu, f"chrf_{mode}": sc.chrf, "bleu_pairs": sc.sentences})
            save(out, result)
            print(f"{name} {mode}: test loss {row[f'test_loss_{mode}']:.4f} ({row[f'{mode}_seconds']:.0f} s)", flush=True)


def measure_stage(args, space, hw, out: Path, result: dict) -> None:
    """Every pick in one interleaved group with the reference arch (a quiet machine wanted)."""
    lat = latency_model(hw, space, space.workload)
    rows = result["picks"]
    archs = [Arch.from_dict(r["arch"]) for r in rows.values()]
    torch.set_num_threads(hw.threads or 1)
    timings = measure(archs, space.workload, hw.name, TimingProtocol(rounds=args.rounds, extra_rounds=8))
    for (name, row), arch, t in zip(rows.items(), archs, timings):
        row.update(measured_raw_s=t.raw_s, measured_s=t.seconds, spread=t.spread,
                   predicted_dataset_s=float(lat.predict([arch])[0][0]))
    largest = rows["largest"]
    for row in rows.values():
        row["speedup_vs_largest"] = largest["measured_raw_s"] / row["measured_raw_s"]  # one group: same moment
    result.update(latency_source=lat.source, measured_on=timings[0].device_name, measured_rounds=args.rounds)
    save(out, result)


def save(out: Path, result: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "hat_table.json", json.dumps(result, indent=2))


def table(result: dict, translation: bool) -> None:
    rows = result["picks"]
    modes = [m for m in ("finetune", "scratch") if all(f"test_loss_{m}" in r for r in rows.values())]
    for mode in modes:
        largest = rows["largest"][f"test_loss_{mode}"]
        quality = "BLEU | chrF | test loss" if translation else "test loss | vs largest | ppl"
        print(f"\nretrained: {mode}")
        print(f"| arch | {quality} | measured, raw wall clock | measured, dataset scale | predicted, dataset scale "
              "| speed-up vs largest (raw) | params |")
        print("|---" * 9 + "|")
        for name, r in rows.items():
            loss = r[f"test_loss_{mode}"]
            q = (f"{r[f'bleu_{mode}']:.2f} | {r[f'chrf_{mode}']:.2f} | {loss:.4f}" if translation else
                 f"{loss:.4f} | {loss - largest:+.4f} | {math.exp(loss):.2f}")
            predicted = f"{r['predicted_dataset_s'] * 1e3:.1f} ms" if "predicted_dataset_s" in r else "-"
            timing = (f"{r['measured_raw_s'] * 1e3:.1f} ms | {r['measured_s'] * 1e3:.1f} ms | {predicted} | "
                      f"{r['speedup_vs_largest']:.2f}x" if "measured_raw_s" in r else f"- | - | {predicted} | -")
            print(f"| {name} ({r['precision']}) | {q} | {timing} | {r['params'] / 1e6:.2f}M |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hardware", default="xeon-2vcpu")
    ap.add_argument("--space", default="lm-shakespeare")
    ap.add_argument("--supernet", default="configs/supernets/lm-shakespeare")
    ap.add_argument("--budgets", nargs="+", default=["30ms", "40ms", "60ms"])
    ap.add_argument("--iterations", type=int, default=160)
    ap.add_argument("--retrain", nargs="+", default=["finetune", "scratch"], choices=["finetune", "scratch"])
    ap.add_argument("--retrain-steps", type=int, default=300, help="finetune: steps from the inherited weights")
    ap.add_argument("--scratch-steps", type=int, default=1000, help="scratch: steps from random weights")
    ap.add_argument("--bleu-pairs", type=int, default=1000, help="Translation: test pairs translated (greedy).")
    ap.add_argument("--no-calibrate", action="store_true",
                    help="search on the dataset's scale (for a train stage beside other work, which would skew "
                         "the reference timing)")
    ap.add_argument("--stage", default="all", choices=["train", "measure", "all"])
    ap.add_argument("--rounds", type=int, default=9, help="timing rounds of the measure stage")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the train stage")
    ap.add_argument("--out", default="bench/results/hat_table")
    args = ap.parse_args()
    space, hw = load_space(args.space), load_hardware(args.hardware)
    out = Path(args.out)
    path = out / "hat_table.json"
    result = json.loads(path.read_text()) if path.is_file() else {}
    picked = ("hardware", "space", "supernet", "budgets", "iterations", "no_calibrate")  # what the picks depend on
    if result.get("args") and {k: result["args"].get(k) for k in picked} != {k: vars(args)[k] for k in picked}:
        sys.exit(f"{path}: holds picks searched with other settings ({result['args']}); use another --out")
    result["args"] = {**result.get("args", {}), **{k: v for k, v in vars(args).items() if k != "stage"}}
    t0 = time.time()
    # every stage on the shipped predictors and datasets (not what the user's store holds), with a
    # score book of its own
    os.environ["HWNAS_HOME"] = tempfile.mkdtemp(prefix="hat-table-home-")
    if args.stage in ("train", "all"):
        torch.set_num_threads(args.threads)
        train_stage(args, space, hw, out, result)
    if args.stage in ("measure", "all"):
        if "picks" not in result:
            sys.exit(f"{path}: no picks to time; run --stage train first")
        measure_stage(args, space, hw, out, result)
    result[f"seconds_{args.stage}"] = result.get(f"seconds_{args.stage}", 0.0) + time.time() - t0
    save(out, result)
    table(result, space.kind == "encoder-decoder")


if __name__ == "__main__":
    main()
