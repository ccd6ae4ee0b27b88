"""Batches of (source, target) sentence pairs for encoder-decoder training and evaluation.

A pair becomes three token sequences: the source `src + EOS` (what the encoder reads), the decoder
input `BOS + tgt` and the labels `tgt + EOS` (teacher forcing: label t is the token after input t).
Batches are padded with PAD to their longest member; `src_keep` marks real source tokens (the
encoder's padding mask) and labels at padded positions are PAD, which every loss ignores. Padding
is cut down by drawing each training batch from pairs of similar length.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from .text import CorpusError
from .tokenizer import ByteTokenizer

Pair = tuple[str, str]
BUCKET = 8  # a training batch of B pairs is drawn from a run of BUCKET * B pairs of similar length


class PairBatches:
    """Padded seq2seq batches over one split. `sample` draws random length-bucketed batches (for
    training); `eval_batches` returns the same fixed batches every call (for validation)."""

    def __init__(self, pairs: Sequence[Pair], max_len: int, tokenizer=None) -> None:
        if not pairs:
            raise CorpusError("this split has no sentence pairs; give a parallel corpus with more lines")
        tok = self.tok = tokenizer or ByteTokenizer()
        # a sentence longer than the model's positions is cut (the EOS/BOS take one position)
        self.src = [np.append(tok.encode(s)[:max_len - 1], tok.eos_id) for s, _ in pairs]
        self.tgt = [tok.encode(t)[:max_len - 1] for _, t in pairs]
        self.max_len = max_len
        self.order = np.argsort([len(s) + len(t) for s, t in zip(self.src, self.tgt)], kind="stable")

    def __len__(self) -> int:
        return len(self.src)

    def collate(self, idx: Sequence[int], copies: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """({"tokens": decoder input (B, T), "src": (B, S), "src_keep": (B, S) bool}, labels (B, T)).
        The first `copies` pairs are identity pairs: their target is their source too."""
        pad, bos, eos = self.tok.pad_id, self.tok.bos_id, self.tok.eos_id
        sources = [np.append(self.tgt[i], eos) if row < copies else self.src[i] for row, i in enumerate(idx)]
        s_len = max(len(s) for s in sources)
        t_len = max(len(self.tgt[i]) for i in idx) + 1
        src = torch.full((len(idx), s_len), pad, dtype=torch.long)
        tin = torch.full((len(idx), t_len), pad, dtype=torch.long)
        tout = torch.full((len(idx), t_len), pad, dtype=torch.long)
        for row, i in enumerate(idx):
            s, t = torch.from_numpy(sources[row].astype(np.int64)), torch.from_numpy(self.tgt[i].astype(np.int64))
            src[row, :len(s)] = s
            tin[row, 0], tin[row, 1:len(t) + 1] = bos, t
            tout[row, :len(t)], tout[row, len(t)] = t, eos
        return {"tokens": tin, "src": src, "src_keep": src != pad}, tout

    def sample(self, batch_size: int, generator: torch.Generator, copy: float = 0.0
               ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """B random pairs of similar length, the first round(copy * B) of them identity pairs (the
        copy warm-up); reproducible given the generator."""
        span = min(len(self), BUCKET * batch_size)
        start = int(torch.randint(0, len(self) - span + 1, (1,), generator=generator))
        pick = torch.randperm(span, generator=generator)[:batch_size] + start
        return self.collate(self.order[pick.numpy()].tolist(), copies=round(copy * batch_size))

    def eval_batches(self, batch_size: int, max_batches: int | None = None
                     ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """Fixed batches: an evenly spaced subset of the split (all of it without max_batches),
        sorted by length so that batches carry little padding."""
        n = len(self) if max_batches is None else min(len(self), batch_size * max_batches)
        chosen = np.linspace(0, len(self) - 1, n).round().astype(int)
        chosen = sorted(set(chosen.tolist()), key=lambda i: len(self.src[i]) + len(self.tgt[i]))
        for b0 in range(0, len(chosen), batch_size):
            yield self.collate(chosen[b0:b0 + batch_size])
