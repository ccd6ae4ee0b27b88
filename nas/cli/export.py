"""`nas export` (a searched arch, or any arch of a supernet, as a standalone SubTransformer folder
with a model card) and `nas retrain` (scratch, finetune or distill; then measured)."""
from __future__ import annotations

import click

from latency.protocol import BACKENDS
from supernet.config import RETRAIN_MODES
from nas import api
from nas.cli._common import PROGRESS, console, device_options


@click.command("export")
@click.argument("run", required=False, metavar="[RUN]", type=click.Path(file_okay=False))
@click.option("--rank", default=1, show_default=True, type=click.IntRange(min=1), help="Which arch of RUN's ranking.")
@click.option("--supernet", "supernet_dir", default=None, type=click.Path(file_okay=False),
              help="Export an arch of your own from this supernet (with --arch) instead of a search run.")
@click.option("--arch", "arch_file", default=None, type=click.Path(dir_okay=False), help="YAML with one arch.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write the model to.")
@click.option("--onnx", is_flag=True, help="Also write model.onnx (the forward pass for ONNX Runtime; int8 "
                                           "models quantized by ONNX Runtime), checked against PyTorch.")
def export_cmd(run, rank, supernet_dir, arch_file, out, onnx):
    """Export an arch as a standalone SubTransformer folder (at its precision) with a model card."""
    res = api.export(run, out=out, rank=rank, supernet=supernet_dir, arch=arch_file, onnx=onnx)
    console.print(f"exported {res.arch.id} ({res.arch.precision}) to {res.folder} (config.json, model.safetensors, "
                  f"README.md model card" + (", model.onnx" if res.card.onnx else "") + ")")
    if res.card.onnx:
        console.print(f"ONNX graph checked against PyTorch: logits within {res.card.onnx.max_abs_diff:.2g}")


@click.command("retrain")
@click.argument("model_dir", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--mode", type=click.Choice(RETRAIN_MODES), default="finetune", show_default=True,
              help="scratch: fresh weights (as HAT); finetune: from the inherited weights; "
                   "distill: inherited weights, taught by the supernet's largest arch.")
@click.option("--steps", default=500, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=None, type=float,
              help="Peak learning rate (default 1e-3; 3e-3 for a language model from scratch).")
@click.option("--batch-size", default=None, type=int, help="Default: 16 windows (language model), 32 pairs (translation).")
@click.option("--seq-len", default=None, type=int,
              help="Language models: window length (default 128); classifiers: the longest text read (default max_len).")
@click.option("--sentences", type=click.IntRange(min=1), default=500, show_default=True,
              help="Translation: test pairs translated for BLEU and chrF afterwards.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Default: DIR/retrained-MODE.")
@device_options
def retrain_cmd(model_dir, mode, steps, lr, batch_size, seq_len, sentences, seed, out, device, precision):
    """Retrain an exported SubTransformer (checkpointed, resumable), then measure it."""
    res = api.retrain(model_dir, mode=mode, steps=steps, lr=lr, batch_size=batch_size, seq_len=seq_len,
                      sentences=sentences, seed=seed, out=out, device=device, precision=precision,
                      progress=PROGRESS)
    if res.classification:
        c = res.classification
        console.print(f"validation loss {res.val_loss:.4f} nats/text (inherited weights had {res.val_loss_inherited:.4f}); "
                      f"test accuracy {100 * c['accuracy']:.1f}%, loss {c['loss']:.4f} ({c['texts']:,} test texts)")
    else:
        console.print(f"validation loss {res.val_loss:.4f} (perplexity {res.perplexity:.2f}); inherited weights had "
                      f"{res.val_loss_inherited:.4f}")
    if res.translation:
        console.print(f"test BLEU {res.translation['bleu']:.2f}, chrF {res.translation['chrf']:.2f} "
                      f"({res.translation['pairs']} pairs, greedy)")
    m, card = res.measured, res.card
    if m.note:
        console.print(f"note: {m.note}")
    line = (f"measured on {m.device_name}: {m.raw_s * 1e3:.2f} ms raw wall clock ± {m.spread:.0%}"
            + (f", {m.normalised_s * 1e3:.2f} ms on the dataset's scale" if m.normalised_s is not None else ""))
    if card.latency_s is not None:
        line += (f"; predicted on {card.hardware}: {card.latency_s * 1e3:.2f} ms ({card.latency_source}"
                 + (f", {card.runtime} runtime" if card.runtime else "") + "); "
                 f"budget {card.latency_budget_s * 1e3:g} ms")
    console.print(line)
    console.print(f"saved {res.folder}")


@click.command("measure")
@click.argument("model_dir", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--hardware", "hw_name", default=None, metavar="NAME|PATH",
              help="Hardware to compare with (default: the one the model was searched for, from its card).")
@click.option("--rounds", default=15, show_default=True, type=click.IntRange(min=3), help="Timed runs.")
@click.option("--workload", default=None, metavar="SPEC", help="Default: the workload of the model's card.")
@click.option("--threads", default=None, type=int, help="CPU threads (default: the hardware profile's).")
@click.option("--backend", type=click.Choice(BACKENDS), default="torch", show_default=True)
def measure_cmd(model_dir, hw_name, rounds, workload, threads, backend):
    """Time an exported model as a user would: raw wall clock, in its own process, beside its
    predicted latency, bound and budget."""
    m = api.measure(model_dir, hardware=hw_name, rounds=rounds, workload=workload, threads=threads, backend=backend)
    if m.note:
        console.print(f"note: {m.note}")
    line = (f"{m.folder}: {m.median_s * 1e3:.2f} ms raw wall clock (median of {len(m.samples)}, spread "
            f"{m.spread:.1%}) on {m.device_name}, {m.threads} thread(s), workload {m.workload}, {m.backend}")
    click.echo(line)
    if m.prefill_s is not None:
        click.echo(f"  prefill (time to first token) {m.prefill_s * 1e3:.2f} ms, then {m.decode_per_token_s * 1e3:.3f} ms "
                   f"per decoded token (raw wall clock medians)")
    if m.predicted_s is not None:
        verdict = "within" if m.within_budget else "OVER"
        click.echo(f"predicted on {m.hardware}: {m.predicted_s * 1e3:.2f} ms (bound {m.bound_s * 1e3:.2f} ms); budget "
                   f"{m.budget_s * 1e3:g} ms: {verdict} budget ({(m.median_s / m.budget_s - 1):+.1%})")
