"""Translation quality with inherited supernet weights: validation loss, and BLEU and chrF (sacrebleu)
of greedy and beam-search decoding on the Folio test split, for the space's largest and smallest
archs, beside the baseline that copies the source unchanged.

    python bench/translation_quality.py --supernet bench/results/supernet-folio --out bench/results/translation
Results: translation_quality.json (with sample translations) in --out; the table goes to
docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.api import load_supernet, supernet_evaluator  # noqa: E402
from space import analytic_cost  # noqa: E402
from supernet.tasks import evenly_spaced, parallel_corpus  # noqa: E402
from supernet.translate import corpus_scores, translate_pairs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--supernet", default="runs/supernet-folio-translation")
    ap.add_argument("--pairs", type=int, default=0, help="Test pairs (evenly spaced; 0: the whole split).")
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--out", default="bench/results/translation")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, record = load_supernet(args.supernet)
    ev = supernet_evaluator(args.supernet, None, (model, record))
    test = parallel_corpus(record.data).test
    pairs = evenly_spaced(test, args.pairs or len(test))
    n = len(pairs)
    refs = [t for _, t in pairs]
    rows = {}
    bleu, chrf = corpus_scores([s for s, _ in pairs], refs)
    rows["copy the source (no model)"] = {"bleu_greedy": bleu, "chrf_greedy": chrf}
    print(f"copy: BLEU {bleu:.2f} chrF {chrf:.2f}", flush=True)
    space = model.space
    for name, arch in (("largest", space.largest()), ("smallest", space.smallest())):
        w = model.active_weights(arch)
        row = {"arch_id": arch.id, "params": analytic_cost(arch).params, "val_loss": ev.loss(arch)}
        for beam in (1, args.beam):
            t0 = time.perf_counter()
            hyps = translate_pairs(arch, w, pairs, beam=beam)
            key = "greedy" if beam == 1 else f"beam{beam}"
            row[f"bleu_{key}"], row[f"chrf_{key}"] = corpus_scores(hyps, refs)
            row[f"seconds_{key}"] = time.perf_counter() - t0
            row[f"samples_{key}"] = [{"src": s, "ref": r, "hyp": h} for (s, r), h in list(zip(pairs, hyps))[::max(1, n // 8)]]
            print(f"{name} {key}: BLEU {row[f'bleu_{key}']:.2f} chrF {row[f'chrf_{key}']:.2f} "
                  f"({row[f'seconds_{key}']:.0f} s)", flush=True)
        rows[name] = row
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "translation_quality.json").write_text(json.dumps(
        {"args": vars(args), "supernet_step": record.step, "pairs": n, "rows": rows}, indent=2))
    print(f"| arch | params | val loss | BLEU greedy | chrF greedy | BLEU beam {args.beam} | chrF beam {args.beam} |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        params = f"{r['params'] / 1e6:.2f}M" if "params" in r else "-"
        loss = f"{r['val_loss']:.4f}" if "val_loss" in r else "-"
        beam = (f"{r[f'bleu_beam{args.beam}']:.2f} | {r[f'chrf_beam{args.beam}']:.2f}"
                if f"bleu_beam{args.beam}" in r else "- | -")
        print(f"| {name} | {params} | {loss} | {r['bleu_greedy']:.2f} | {r['chrf_greedy']:.2f} | {beam} |")


if __name__ == "__main__":
    main()
