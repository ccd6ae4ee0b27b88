"""The score book: losses kept per scorer across searches, read back whole, never scored twice."""
from __future__ import annotations

import math
from pathlib import Path

from nas.search.scores import ScoreBook, scorer_key
from space import load_space

LM = load_space("lm-shakespeare")


def test_book_keeps_scores_across_processes_and_skips_torn_lines(tmp_path: Path) -> None:
    archs = [LM.sample(s) for s in range(6)]
    calls: list[list[str]] = []

    def evaluate(batch):
        calls.append([a.id for a in batch])
        return [float(i) if i != 2 else math.inf for i, _ in enumerate(batch)]

    book = ScoreBook(tmp_path / "s.jsonl")
    first = book.wrap(evaluate)(archs[:4])
    assert first[:2] == [0.0, 1.0] and math.isinf(first[2]) and len(book) == 3  # a failure is not kept
    with open(tmp_path / "s.jsonl", "a") as f:
        f.write('{"id": "torn", "loss": 1.')  # a search killed mid-line
    again = ScoreBook(tmp_path / "s.jsonl")  # another process, later
    assert len(again) == 3 and again.get(archs[1]) == 1.0 and again.get(archs[2]) is None
    got = again.wrap(evaluate)(archs)
    assert calls[-1] == [archs[2].id, archs[4].id, archs[5].id]  # only what the book lacks is scored
    assert got[:2] == [0.0, 1.0] and again.reused == 3
    assert len(ScoreBook(tmp_path / "s.jsonl")) == 5  # what followed the torn line is read back whole
    assert [loss for _, loss in again.items()] == sorted(loss for _, loss in again.items())


def test_scorer_key_follows_weights_and_settings(tmp_path: Path) -> None:
    w = tmp_path / "supernet.safetensors"
    w.write_bytes(b"weights one")
    k = scorer_key(w, split="val", batches=4, device="cpu", precision="fp32")
    assert k == scorer_key(w, split="val", batches=4, device="cpu", precision="fp32")
    assert k != scorer_key(w, split="val", batches=8, device="cpu", precision="fp32")
    assert k != scorer_key(w, split="val", batches=4, device="cuda", precision="fp32")
    w.write_bytes(b"weights two")  # trained further: another scorer
    assert k != scorer_key(w, split="val", batches=4, device="cpu", precision="fp32")
