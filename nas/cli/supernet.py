"""`nas train-supernet`, `nas evaluate`, `nas generate`, `nas translate`."""
from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from nas import api
from nas.cli._common import PROGRESS, console, device_options, stdout_console
from space.errors import UserError
from space.options import choices_of
from supernet.config import TrainConfig, preset_names


@click.command("train-supernet")
@click.option("--space", "space_name", default="lm-shakespeare", show_default=True, metavar="NAME|PATH",
              help="Search space whose largest arch the supernet holds.")
@click.option("--data", default=None, metavar="PATH",
              help="Language models: your text file or folder (default: the embedded plays).")
@click.option("--src", "src_file", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Translation: source sentences, one per line (with --tgt; default: the Folio -> modern corpus).")
@click.option("--tgt", "tgt_file", default=None, type=click.Path(dir_okay=False), metavar="FILE",
              help="Translation: target sentences, line i translating line i of --src.")
@click.option("--steps", type=int, default=None, help="Training steps (default: the preset's, or 3000).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run folder (default: runs/supernet-SPACE). An unfinished run there resumes.")
@click.option("--preset", type=click.Choice(preset_names()), default=None,
              help="quick: about 10 minutes on 2 CPU cores for the embedded default.")
@click.option("--sampling", type=click.Choice(choices_of(TrainConfig, "sampling")), default=None,
              help="sandwich (default): largest + smallest + random archs per step, with in-place distillation; "
                   "uniform: one random arch per step, as HAT.")
@click.option("--extremes", type=click.Choice(choices_of(TrainConfig, "extremes")), default=None,
              help="Sandwich: the largest and smallest archs' attention types, drawn per layer each step (mixed, "
                   "the default) or the space's first type on every layer (reference).")
@click.option("--batch-size", type=int, default=None)
@click.option("--seq-len", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--label-smoothing", type=float, default=None, help="Default: 0.1 for translation, 0 for language models.")
@click.option("--init-from", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Warm start: begin from the weights of the supernet in DIR that have the same names and shapes "
                   "(e.g. configs/supernets/lm-shakespeare for a long-context space). Same tokenizer and task.")
@click.option("--copy-warmup", type=click.IntRange(min=0), default=None, metavar="STEPS",
              help="Translation: train the first STEPS steps on identity pairs too (a share of each batch falling "
                   "from 1 to 0), so the model learns to copy its source first (default 0).")
@click.option("--seed", type=int, default=None, help="Seed of weights, data order and arch sampling (default 0).")
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
@click.option("--tokenizer", default=None, metavar="bytes|bpe:N|FILE",
              help="bytes; a byte-level BPE of N ids trained on your training split; or your tokenizer.json "
                   "(default: the space's own: bytes for 259 ids, else a BPE of its vocab_size).")
@click.option("--grad-accum", default=1, show_default=True, type=click.IntRange(min=1),
              help="Micro-batches per step (per rank): less activation memory, the same global batch.")
@click.option("--checkpointing", is_flag=True, help="Activation checkpointing: recompute each block in the "
                                                    "backward pass (less memory, about a third more compute).")
@device_options
def train_supernet_cmd(space_name, data, src_file, tgt_file, steps, out, preset, sampling, extremes, batch_size, seq_len, lr,
                       label_smoothing, init_from, copy_warmup, seed, threads, tokenizer, grad_accum, checkpointing, device, precision) -> None:
    """Train the weight-sharing SuperTransformer on a task (language model or translation, by the space's kind).
    Under `torchrun --nproc_per_node N -m nas train-supernet ...` every process is one DDP rank."""
    request = api.TrainRequest(space_name, out=out, data=data, src=src_file, tgt=tgt_file, preset=preset,
                               tokenizer=tokenizer, device=device, precision=precision, grad_accum=grad_accum,
                               checkpointing=checkpointing,
                               settings=dict(steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr,
                                             sampling=sampling, extremes=extremes, label_smoothing=label_smoothing, seed=seed,
                                             copy_warmup=copy_warmup,
                                             init_from=str(init_from) if init_from else None))
    result = api.train_supernet(request, threads=threads, progress=PROGRESS)
    from supernet.device import launched_by_torchrun
    import os
    if not launched_by_torchrun() or os.environ.get("RANK") == "0":
        unit = ("nats/text" if result.record.task == "classify" else
                "nats/byte" if result.record.tokenizer.get("type") == "byte" else "nats/token")
        console.print(f"supernet saved in {result.folder} after {result.record.step} steps ({result.ranks} rank(s), "
                      f"{result.device}, {result.precision}); validation loss ({unit}): largest "
                      f"{result.val_largest:.3f}, smallest {result.val_smallest:.3f}")


@click.command("evaluate")
@click.option("--supernet", "supernet_dir", required=True, type=click.Path(file_okay=False),
              help="A folder `nas train-supernet` wrote.")
@click.option("--arch", "arch_file", required=True, type=click.Path(dir_okay=False),
              help="YAML with one arch or a list (e.g. from `nas space sample`).")
@click.option("--batches", type=click.IntRange(min=1), default=None, help="Evaluation batches (default: as in training).")
@click.option("--split", type=click.Choice(["val", "test"]), default="val", show_default=True,
              help="The held-out split scored (selection uses val; final tables use test).")
@click.option("--sentences", type=click.IntRange(min=1), default=500, show_default=True,
              help="Translation: how many pairs of the split to translate (evenly spaced).")
@click.option("--beam", type=click.IntRange(min=1), default=4, show_default=True,
              help="Translation: beam size of the second decoding (1: greedy only).")
@click.option("--context", type=click.IntRange(min=2), default=None, metavar="N",
              help="Language models: score windows of N tokens (default: the training length).")
@device_options
def evaluate_cmd(supernet_dir, arch_file, batches, split, sentences, beam, context, device, precision) -> None:
    """Loss and perplexity of archs with inherited supernet weights; for translation also BLEU and
    chrF of greedy and beam-search decoding."""
    res = api.evaluate(supernet_dir, arch_file, batches=batches, split=split, sentences=sentences, beam=beam,
                       device=device, precision=precision, progress=PROGRESS, context=context)
    if res.task == "classify":
        table = Table("model", "params", f"{split} loss (nats/text)", "accuracy %", box=None, title_justify="left",
                      title=f"inherited weights and the baselines, on the same {res.tokens:,} {split} texts")
        for s in res.scores:
            table.add_row(s.arch.id, f"{s.params:,}", f"{s.loss:.4f}", f"{s.translation['accuracy %']:.1f}")
        for b in res.baselines:
            table.add_row(b.name, "-", f"{b.loss:.4f}", f"{100 * b.accuracy:.1f}")
        stdout_console().print(table)
        return
    extra = list(res.scores[0].translation)
    title = f"inherited weights, {res.tokens:,} {split} tokens" + (f" in windows of {context}" if context else "")
    if res.pairs:
        title += f"; BLEU/chrF on {res.pairs:,} {split} pairs (sacrebleu)"
    table = Table("arch", "params", f"{split} loss", "perplexity", "bits/byte", *extra, box=None, title=title,
                  title_justify="left")
    for s in res.scores:
        table.add_row(s.arch.id, f"{s.params:,}", f"{s.loss:.4f}", f"{s.perplexity:.3f}", f"{s.bits:.3f}",
                      *[f"{s.translation[k]:.2f}" for k in extra])
    stdout_console().print(table)


@click.command("generate")
@click.argument("model_dir", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--prompt", default="ROMEO.\n", show_default=True, help="Text to continue.")
@click.option("--tokens", default=200, show_default=True, type=click.IntRange(min=1),
              help="Tokens to generate (bytes, for a byte-level model).")
@click.option("--temperature", default=0.8, show_default=True, type=float, help="0 = greedy.")
@click.option("--top-k", default=50, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N|mps")
def generate_cmd(model_dir, prompt, tokens, temperature, top_k, seed, device) -> None:
    """Generate text from an exported SubTransformer (in its own tokenizer)."""
    click.echo(prompt + api.generate(model_dir, prompt, tokens=tokens, temperature=temperature, top_k=top_k,
                                     seed=seed, device=device))


@click.command("translate")
@click.argument("model_dir", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--text", "texts", multiple=True, help="A sentence to translate (repeatable).")
@click.option("--file", "file_", default=None, type=click.Path(dir_okay=False), help="Sentences, one per line.")
@click.option("--beam", default=4, show_default=True, type=click.IntRange(min=1), help="Beam size (1: greedy).")
@click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N|mps")
def translate_cmd(model_dir, texts, file_, beam, device) -> None:
    """Translate with an exported encoder-decoder SubTransformer; one output line per input line."""
    lines = list(texts)
    if file_:
        try:
            lines += Path(file_).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"--file {file_}: cannot read it as UTF-8 text ({e.__class__.__name__})") from None
    for line in api.translate(model_dir, lines, beam=beam, device=device):
        click.echo(line)
