"""`nas train-supernet`, `nas evaluate`, `nas export --supernet`, `nas generate`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from nas.progress import console, progress, stdout_console
from space import load_archs, load_space
from space.errors import UserError


def default_supernet_dir(space_name: str) -> Path:
    return Path("runs") / f"supernet-{space_name}"


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
@click.option("--preset", type=click.Choice(["quick", "full"]), default=None,
              help="quick: about 10 minutes on 2 CPU cores for the embedded default.")
@click.option("--sampling", type=click.Choice(["sandwich", "uniform"]), default=None,
              help="sandwich (default): largest + smallest + random archs per step, with in-place distillation; "
                   "uniform: one random arch per step, as HAT.")
@click.option("--batch-size", type=int, default=None)
@click.option("--seq-len", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--label-smoothing", type=float, default=None, help="Default: 0.1 for translation, 0 for language models.")
@click.option("--seed", type=int, default=None, help="Seed of weights, data order and arch sampling (default 0).")
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
def train_supernet_cmd(space_name: str, data: str | None, src_file: str | None, tgt_file: str | None,
                       steps: int | None, out: str | None, preset: str | None, sampling: str | None,
                       batch_size: int | None, seq_len: int | None, lr: float | None, label_smoothing: float | None,
                       seed: int | None, threads: int | None) -> None:
    """Train the weight-sharing SuperTransformer on a task (language model or translation, by the space's kind)."""
    import torch
    from supernet.tasks import load_task_data, resolve_data, task_for
    from supernet.train import CKPT, resolve_config, train_supernet
    if threads:
        torch.set_num_threads(threads)
    space = load_space(space_name)
    task = task_for(space)
    if task == "translation":
        if data:
            raise UserError(f"--data: space {space.name!r} translates; give --src FILE --tgt FILE instead")
        if (src_file is None) != (tgt_file is None):
            raise UserError("give both --src FILE and --tgt FILE (aligned line by line), or neither for the "
                            "Folio -> modern corpus")
        data_ref = resolve_data(task, [src_file, tgt_file] if src_file else None)
    else:
        if src_file or tgt_file:
            raise UserError(f"--src/--tgt: space {space.name!r} is a language model; give --data PATH instead")
        data_ref = resolve_data(task, data)
    cfg = resolve_config(preset, task, steps=steps, sampling=sampling, batch_size=batch_size, seq_len=seq_len, lr=lr,
                         label_smoothing=label_smoothing, seed=seed, distill=None if sampling != "uniform" else False)
    if task == "lm" and cfg.seq_len > space.max_len:
        raise UserError(f"--seq-len {cfg.seq_len} exceeds the space's max_len {space.max_len}")
    folder = Path(out) if out else default_supernet_dir(space.name)
    td = load_task_data(task, data_ref, max_len=space.max_len, seq_len=cfg.seq_len, batch_size=cfg.batch_size,
                        eval_batches=cfg.eval_batches)
    train_batches, val = td.train, td.val
    console.print(f"corpus: {td.description}")
    if (folder / CKPT).is_file():
        console.print(f"resuming the run in {folder}")
    meta = {"task": task, "data": data_ref, "tokenizer": "bytes"}
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


def supernet_evaluator(folder: str, batches: int | None, loaded=None):
    """(Evaluator on the supernet's own validation data, the supernet). `loaded`: what
    `load_supernet(folder)` returned, when the caller has it already."""
    from supernet.evaluate import Evaluator
    from supernet.tasks import supernet_task_data
    from supernet.train import load_supernet
    model, ck = loaded or load_supernet(folder)
    td = supernet_task_data(ck["meta"], ck["train"], model.space.max_len, batches)
    return Evaluator(model, td.val), model


@click.command("evaluate")
@click.option("--supernet", "supernet_dir", required=True, type=click.Path(file_okay=False),
              help="A folder `nas train-supernet` wrote.")
@click.option("--arch", "arch_file", required=True, type=click.Path(dir_okay=False),
              help="YAML with one arch or a list (e.g. from `nas space sample`).")
@click.option("--batches", type=int, default=None, help="Validation batches (default: as in training).")
@click.option("--split", type=click.Choice(["val", "test"]), default="test", show_default=True,
              help="Translation: the pairs BLEU and chrF are measured on.")
@click.option("--sentences", type=click.IntRange(min=1), default=500, show_default=True,
              help="Translation: how many pairs of the split to translate (evenly spaced).")
@click.option("--beam", type=click.IntRange(min=1), default=4, show_default=True,
              help="Translation: beam size of the second decoding (1: greedy only).")
def evaluate_cmd(supernet_dir: str, arch_file: str, batches: int | None, split: str, sentences: int, beam: int) -> None:
    """Validation loss and perplexity of archs with inherited supernet weights; for translation
    also BLEU and chrF of greedy and beam-search decoding."""
    from space import analytic_cost
    from supernet.evaluate import bits_per_token, perplexity
    from supernet.train import load_supernet
    archs = load_archs(arch_file)
    loaded = load_supernet(supernet_dir)
    ev, model = supernet_evaluator(supernet_dir, batches, loaded)
    for a in archs:
        model.require(a)
    translation = model.space.kind == "encoder-decoder"
    cols = ["arch", "params", "val loss", "perplexity", "bits/byte"]
    pairs: list = []
    if translation:
        from supernet.tasks import evenly_spaced, parallel_corpus
        ck = loaded[1]
        pairs = evenly_spaced(getattr(parallel_corpus(ck["meta"].get("data")), split), sentences)
        cols += ["BLEU greedy", "chrF greedy"] + ([f"BLEU beam {beam}", f"chrF beam {beam}"] if beam > 1 else [])
    title = f"inherited weights, {ev.tokens:,} validation tokens"
    if translation:
        title += f"; BLEU/chrF on {len(pairs):,} {split} pairs (sacrebleu)"
    table = Table(*cols, box=None, title=title, title_justify="left")
    units = len(archs) * (1 + (len(pairs) * (1 + (beam > 1)) if translation else 0))
    with progress("evaluate", units, unit="item") as bar:
        for a in archs:
            loss = ev.loss(a)
            bar.advance()
            row = [a.id, f"{analytic_cost(a).params:,}", f"{loss:.4f}", f"{perplexity(loss):.3f}",
                   f"{bits_per_token(loss):.3f}"]
            if translation:
                from supernet.translate import score_translation
                weights = model.active_weights(a)
                for k in ([1, beam] if beam > 1 else [1]):
                    sc = score_translation(a, weights, pairs, beam=k, progress=bar.advance)
                    row += [f"{sc.bleu:.2f}", f"{sc.chrf:.2f}"]
            table.add_row(*row)
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


@click.command("translate")
@click.argument("model_dir", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--text", "texts", multiple=True, help="A sentence to translate (repeatable).")
@click.option("--file", "file_", default=None, type=click.Path(dir_okay=False), help="Sentences, one per line.")
@click.option("--beam", default=4, show_default=True, type=click.IntRange(min=1), help="Beam size (1: greedy).")
def translate_cmd(model_dir: str, texts: tuple[str, ...], file_: str | None, beam: int) -> None:
    """Translate with an exported encoder-decoder SubTransformer; one output line per input line."""
    from supernet.subnet import load
    from supernet.translate import translate_pairs
    model = load(model_dir)
    if model.arch.kind != "encoder-decoder":
        raise UserError(f"{model_dir}: a {model.arch.kind} model does not translate; use `nas generate`")
    lines = list(texts)
    if file_:
        try:
            lines += Path(file_).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"--file {file_}: cannot read it as UTF-8 text ({e.__class__.__name__})") from None
    if not lines:
        raise UserError("nothing to translate: give --text SENTENCE or --file FILE")
    for line in translate_pairs(model.arch, model.weights(), [(s, "") for s in lines], beam=beam):
        click.echo(line)
