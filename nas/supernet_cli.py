"""`nas train-supernet`, `nas evaluate`, `nas export --supernet`, `nas generate`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from nas.progress import console, progress, stdout_console
from space import Arch, SearchSpace, load_archs, load_space
from space.errors import UserError


def default_supernet_dir(space_name: str) -> Path:
    return Path("runs") / f"supernet-{space_name}"


def lm_data(data: str | None, seq_len: int, batch_size: int, eval_batches: int):
    """(train sampler, fixed validation batches, corpus) for a language-model task."""
    from supernet.corpus import LMBatches, load_text_corpus
    corpus = load_text_corpus(data)
    if len(corpus.val) <= seq_len + 1:
        raise UserError(f"{data or 'the corpus'}: the validation split has {len(corpus.val)} tokens, fewer than one "
                        f"window of {seq_len + 1}; use more text or a shorter --seq-len")
    val = list(LMBatches(corpus.val, seq_len).eval_batches(batch_size, max_batches=eval_batches))
    return LMBatches(corpus.train, seq_len), val, corpus


def _require_lm(space: SearchSpace) -> None:
    if space.kind != "decoder":
        raise UserError(f"space {space.name!r} is {space.kind}: supernet training covers decoder-only language "
                        "models so far (encoder-decoder translation arrives with issue #6)")


@click.command("train-supernet")
@click.option("--space", "space_name", default="lm-shakespeare", show_default=True, metavar="NAME|PATH",
              help="Search space whose largest arch the supernet holds.")
@click.option("--data", default=None, metavar="PATH", help="Your text file or folder (default: the embedded plays).")
@click.option("--steps", type=int, default=None, help="Training steps (default: the preset's, or 3000).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run folder (default: runs/supernet-SPACE). An unfinished run there resumes.")
@click.option("--preset", type=click.Choice(["quick", "full"]), default=None,
              help="quick: about 10 minutes on 2 CPU cores for the embedded default.")
@click.option("--sampling", type=click.Choice(["sandwich", "uniform"]), default=None,
              help="sandwich (default): largest + smallest + random archs per step, with in-place distillation; "
                   "uniform: one random arch per step, as HAT.")
@click.option("--batch-size", type=int, default=None)
@click.option("--seq-len", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--seed", type=int, default=None, help="Seed of weights, data order and arch sampling (default 0).")
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
def train_supernet_cmd(space_name: str, data: str | None, steps: int | None, out: str | None, preset: str | None,
                       sampling: str | None, batch_size: int | None, seq_len: int | None, lr: float | None,
                       seed: int | None, threads: int | None) -> None:
    """Train the weight-sharing SuperTransformer on a task."""
    import torch
    from supernet.train import CKPT, resolve_config, train_supernet
    if threads:
        torch.set_num_threads(threads)
    space = load_space(space_name)
    _require_lm(space)
    cfg = resolve_config(preset, steps=steps, sampling=sampling, batch_size=batch_size, seq_len=seq_len, lr=lr,
                         seed=seed, distill=None if sampling != "uniform" else False)
    if cfg.seq_len > space.max_len:
        raise UserError(f"--seq-len {cfg.seq_len} exceeds the space's max_len {space.max_len}")
    folder = Path(out) if out else default_supernet_dir(space.name)
    train_batches, val, corpus = lm_data(data, cfg.seq_len, cfg.batch_size, cfg.eval_batches)
    console.print(f"corpus: {corpus.describe()}")
    if (folder / CKPT).is_file():
        console.print(f"resuming the run in {folder}")
    meta = {"task": "lm", "data": str(Path(data).resolve()) if data else None, "tokenizer": "bytes"}
    with progress("train", cfg.steps, unit="step") as bar:
        last: dict[str, Any] = {}

        def report(total: int, row: dict[str, Any]) -> None:
            last.update(row)
            info = f"loss {row['loss']:.3f}  {row['tokens_per_s']:.0f} tok/s"
            if "val_largest" in last:
                info += f"  val largest {last['val_largest']:.3f} smallest {last['val_smallest']:.3f}"
            bar.update(row["step"], info=info)

        state = train_supernet(space, train_batches, val, folder, cfg, meta, progress=report)
    final = state.log[-1] if state.log else {}
    console.print(f"supernet saved in {folder}/{CKPT} after {state.step} steps; validation loss (nats/byte): "
                  f"largest {final.get('val_largest', float('nan')):.3f}, "
                  f"smallest {final.get('val_smallest', float('nan')):.3f}")


def supernet_evaluator(folder: str, batches: int | None):
    from supernet.evaluate import Evaluator
    from supernet.train import load_supernet
    model, ck = load_supernet(folder)
    cfg = ck["train"]
    _, val, _ = lm_data(ck["meta"].get("data"), cfg["seq_len"], cfg["batch_size"], batches or cfg["eval_batches"])
    return Evaluator(model, val), model


@click.command("evaluate")
@click.option("--supernet", "supernet_dir", required=True, type=click.Path(file_okay=False),
              help="A folder `nas train-supernet` wrote.")
@click.option("--arch", "arch_file", required=True, type=click.Path(dir_okay=False),
              help="YAML with one arch or a list (e.g. from `nas space sample`).")
@click.option("--batches", type=int, default=None, help="Validation batches (default: as in training).")
def evaluate_cmd(supernet_dir: str, arch_file: str, batches: int | None) -> None:
    """Validation loss and perplexity of archs with inherited supernet weights."""
    from space import analytic_cost
    from supernet.evaluate import bits_per_token, perplexity
    archs = load_archs(arch_file)
    ev, model = supernet_evaluator(supernet_dir, batches)
    for a in archs:
        model.require(a)
    table = Table("arch", "params", "val loss", "perplexity", "bits/byte", box=None,
                  title=f"inherited weights, {ev.tokens:,} validation tokens", title_justify="left")
    with progress("evaluate", len(archs), unit="arch") as bar:
        for a in archs:
            loss = ev.loss(a)
            table.add_row(a.id, f"{analytic_cost(a).params:,}", f"{loss:.4f}", f"{perplexity(loss):.3f}",
                          f"{bits_per_token(loss):.3f}")
            bar.advance()
    stdout_console().print(table)


@click.command("generate")
@click.argument("model_dir", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--prompt", default="ROMEO.\n", show_default=True, help="Text to continue.")
@click.option("--tokens", default=200, show_default=True, type=click.IntRange(min=1), help="Bytes to generate.")
@click.option("--temperature", default=0.8, show_default=True, type=float, help="0 = greedy.")
@click.option("--top-k", default=50, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
def generate_cmd(model_dir: str, prompt: str, tokens: int, temperature: float, top_k: int, seed: int) -> None:
    """Generate text from an exported SubTransformer."""
    import torch
    from supernet.corpus import ByteTokenizer
    from supernet.generate import generate
    from supernet.subnet import load
    model = load(model_dir)
    tok = ByteTokenizer()
    ids = torch.as_tensor(tok.encode(prompt), dtype=torch.long)[None]
    if ids.numel() == 0:
        raise UserError("--prompt is empty; give some text to continue")
    new = generate(model, ids, tokens, temperature, top_k, torch.Generator().manual_seed(seed))
    click.echo(prompt + tok.decode(new[0].tolist()))
