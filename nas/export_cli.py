"""`nas export` (a searched arch, or any arch of a supernet, as a standalone SubTransformer folder
with a model card) and `nas retrain` (scratch, finetune or distill; then measured)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from nas.progress import console, progress
from nas.space_cli import _arch_summary, human
from space import Arch, Workload, analytic_cost, load_archs
from space._io import atomic_write_text
from space.errors import UserError


def _from_run(run: Path, rank: int) -> tuple[Arch, dict[str, Any], dict[str, Any]]:
    import pandas as pd
    if not (run / "run.json").is_file():
        raise UserError(f"{run}: not a search run folder (no run.json); run `nas search` first")
    meta = json.loads((run / "run.json").read_text())
    ranking = json.loads((run / "ranking.json").read_text())
    if not 1 <= rank <= len(ranking):
        raise UserError(f"--rank {rank}: the run ranks {len(ranking)} archs within its budget; pick 1..{len(ranking)}")
    trials = pd.read_csv(run / "trials.csv")
    row = trials[trials.arch_id == ranking[rank - 1]].iloc[0].to_dict()
    return Arch.from_json(row["arch"]), meta, row


def model_card(arch: Arch, meta: dict[str, Any]) -> str:
    w = Workload(**meta["workload"]) if "workload" in meta else Workload(1, min(64, arch.max_len))
    cost = analytic_cost(arch, w)
    lines = [f"# SubTransformer {arch.id}", "",
             f"- layout: {_arch_summary(arch)}",
             f"- parameters: {cost.params:,} ({human(cost.params)})",
             f"- FLOPs under workload {w}: {human(cost.flops)}; bytes moved {human(cost.bytes, 'B')}"]
    if "latency_s" in meta:
        lines.append(f"- predicted latency on {meta['hardware']}: {meta['latency_s'] * 1e3:.3f} ms "
                     f"({meta['latency_source']} predictor); budget {meta['latency_budget_s'] * 1e3:g} ms")
    if "loss" in meta:
        lines.append(f"- validation loss with inherited supernet weights: {meta['loss']:.4f} nats/token "
                     f"(perplexity {math.exp(meta['loss']):.2f})")
    lines += ["", "Load it: `from supernet.subnet import load; model = load('THIS_FOLDER')`.", "",
              "```yaml", arch.to_yaml().rstrip(), "```", ""]
    return "\n".join(lines)


@click.command("export")
@click.argument("run", required=False, metavar="[RUN]", type=click.Path(file_okay=False))
@click.option("--rank", default=1, show_default=True, type=click.IntRange(min=1), help="Which arch of RUN's ranking.")
@click.option("--supernet", "supernet_dir", default=None, type=click.Path(file_okay=False),
              help="Export an arch of your own from this supernet (with --arch) instead of a search run.")
@click.option("--arch", "arch_file", default=None, type=click.Path(dir_okay=False), help="YAML with one arch.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write the model to.")
def export_cmd(run, rank, supernet_dir, arch_file, out):
    """Export an arch as a standalone SubTransformer folder with a model card."""
    from supernet.subnet import extract, save
    from supernet.train import load_supernet
    if run:
        arch, meta, row = _from_run(Path(run), rank)
        supernet_dir = meta["supernet"]
        card = {**meta, "latency_s": row["latency_s"], "loss": row["loss"], "rank": rank}
    elif supernet_dir and arch_file:
        archs = load_archs(arch_file)
        if len(archs) != 1:
            raise UserError(f"{arch_file}: holds {len(archs)} archs; export takes exactly one")
        arch, card = archs[0], {}
    else:
        raise UserError("export: give a search RUN folder, or --supernet DIR with --arch FILE")
    model, ck = load_supernet(supernet_dir)
    card = {**card, "supernet": str(Path(supernet_dir).resolve()), "data": ck["meta"].get("data"),
            "tokenizer": ck["meta"].get("tokenizer", "bytes"), "task": ck["meta"].get("task")}
    card.pop("space_def", None)
    folder = save(extract(model, arch), out, meta=card)
    atomic_write_text(folder / "README.md", model_card(arch, card))
    console.print(f"exported {arch.id} to {folder} (config.json, model.safetensors, README.md model card)")


@click.command("retrain")
@click.argument("model_dir", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--mode", type=click.Choice(["scratch", "finetune", "distill"]), default="finetune", show_default=True,
              help="scratch: fresh weights (as HAT); finetune: from the inherited weights; "
                   "distill: inherited weights, taught by the supernet's largest arch.")
@click.option("--steps", default=500, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=None, type=float,
              help="Peak learning rate (default 1e-3; 3e-3 for a language model from scratch).")
@click.option("--batch-size", default=None, type=int, help="Default: 16 windows (language model), 32 pairs (translation).")
@click.option("--seq-len", default=128, show_default=True, type=int, help="Language models: window length.")
@click.option("--sentences", type=click.IntRange(min=1), default=500, show_default=True,
              help="Translation: test pairs translated for BLEU and chrF afterwards.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Default: DIR/retrained-MODE.")
def retrain_cmd(model_dir, mode, steps, lr, batch_size, seq_len, sentences, seed, out):
    """Retrain an exported SubTransformer (checkpointed, resumable), then measure it here."""
    from supernet.evaluate import Evaluator
    from supernet.subnet import load, save
    from supernet.tasks import load_task_data, task_for
    from supernet.train import load_supernet, resolve_config, run_batch, train_fixed
    model = load(model_dir)
    meta = dict(getattr(model, "meta", {}))
    task = meta.get("task") or task_for(model.arch)
    translation = task == "translation"
    # the task's defaults (batch, label smoothing); a language model from scratch takes its supernet's
    # 3e-3, everything else 1e-3 (translation never learns to copy at 3e-3: supernet/train.py)
    default_lr = 3e-3 if mode == "scratch" and not translation else 1e-3
    cfg = resolve_config(None, task, steps=steps, batch_size=batch_size, seq_len=min(seq_len, model.arch.max_len),
                         lr=lr or default_lr, warmup=min(50, steps // 10 + 1), seed=seed, eval_every=10**9,
                         ckpt_every=50)
    td = load_task_data(task, meta.get("data"), max_len=model.arch.max_len, seq_len=cfg.seq_len,
                        batch_size=cfg.batch_size, eval_batches=8)
    target = Path(out) if out else Path(model_dir) / f"retrained-{mode}"
    target.mkdir(parents=True, exist_ok=True)
    before = Evaluator(model, td.val).loss(model.arch)
    if mode == "scratch":
        model.reset_parameters(seed)
    teacher = None
    if mode == "distill":
        if not meta.get("supernet"):
            raise UserError(f"{model_dir}: its card names no supernet to distill from; use --mode finetune")
        sup, _ = load_supernet(meta["supernet"])
        largest = sup.space.largest()
        teacher = lambda x: run_batch(sup, x, largest)  # noqa: E731
    with progress(f"retrain ({mode})", steps, unit="step") as bar:
        train_fixed(model, td.train, cfg, progress=lambda s: bar.update(s), teacher=teacher, ckpt=target / "retrain.pt")
    after = Evaluator(model, td.val).loss(model.arch)
    result = {"mode": mode, "steps": steps, "val_loss_inherited": before, "val_loss": after,
              "perplexity": math.exp(after)}
    if translation:
        from supernet.tasks import evenly_spaced, parallel_corpus
        from supernet.translate import score_translation
        pairs = evenly_spaced(parallel_corpus(meta.get("data")).test, sentences)
        with progress("translate test pairs", len(pairs), unit="pair") as bar:
            sc = score_translation(model.arch, model.weights(), pairs, progress=bar.advance)
        result.update(bleu=sc.bleu, chrf=sc.chrf, bleu_pairs=sc.sentences, decoding=sc.decoding)
    measured = measure_here(model.arch, Workload(**meta["workload"]) if "workload" in meta else None,
                            meta.get("hardware"))
    result.update(**measured, **{k: meta[k] for k in ("latency_s", "latency_source", "latency_budget_s", "hardware")
                                 if k in meta})
    save(model, target, meta={**meta, "retrain": result})
    atomic_write_text(target / "retrain.json", json.dumps(result, indent=2))
    console.print(f"validation loss {after:.4f} (perplexity {math.exp(after):.2f}); inherited weights had {before:.4f}")
    if translation:
        console.print(f"test BLEU {result['bleu']:.2f}, chrF {result['chrf']:.2f} ({result['bleu_pairs']} pairs, greedy)")
    line = f"measured here ({measured['measured_on']}): {measured['measured_s'] * 1e3:.2f} ms ± {measured['measured_spread']:.0%}"
    if "latency_s" in meta:
        line += (f"; predicted on {meta['hardware']}: {meta['latency_s'] * 1e3:.2f} ms ({meta['latency_source']}); "
                 f"budget {meta['latency_budget_s'] * 1e3:g} ms")
    console.print(line)
    console.print(f"saved {target}")


def measure_here(arch: Arch, workload: Workload | None, hardware: str | None = None) -> dict[str, Any]:
    """The arch's latency on this machine with the profiling protocol. When this machine's hardware
    profile has a measured dataset, the arch is timed beside the dataset's reference arch and
    reported on the dataset's scale (ratio x the reference's median there), which cancels this
    machine's drift and is what the measured predictor predicts."""
    from latency.dataset import read_dataset
    from latency.model import space_for
    from latency.profile import reference_arch, time_group
    from latency.protocol import TimingProtocol
    from latency.store import find_dataset
    w = workload or Workload(1, min(64, arch.max_len), 32)
    try:
        reference = reference_arch(space_for(arch))
    except UserError:
        reference = None
    threads = None
    if hardware:
        from latency.hardware import load_hardware
        threads = load_hardware(hardware).threads  # as that profile's dataset was measured
    timings, meta = time_group([arch], w, "cpu", TimingProtocol(warmup=3, rounds=7, max_spread=0.05, extra_rounds=8),
                               threads=threads, reference=reference)
    t = timings[0]
    out = {"measured_raw_s": t.median, "measured_s": t.median, "measured_spread": t.spread,
           "measured_on": meta["device_name"], "measured_threads": meta["threads"], "measured_workload": str(w),
           "measured_scale": "raw"}
    path = find_dataset(hardware) if hardware else None
    if reference is not None and path is not None:
        data = read_dataset(path)
        ref_s = data[data.ref_id == reference.id].ref_s
        if len(ref_s):
            out.update(measured_s=t.ratio * float(ref_s.median()), measured_scale=f"reference-normalised ({path.name})")
    return out
