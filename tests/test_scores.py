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
    assert [loss for _, loss, _ in again.items()] == sorted(loss for _, loss, _ in again.items())


def test_book_keeps_each_fidelity_apart(tmp_path: Path) -> None:
    space = load_space("lm-shakespeare")
    archs = [space.sample(s) for s in range(3)]
    calls: list[tuple[int, int]] = []

    def evaluate(batch, batches):
        calls.append((len(batch), batches))
        return [float(batches) + i for i, _ in enumerate(batch)]

    book = ScoreBook(tmp_path / "s.jsonl")
    score = book.wrap(evaluate)
    assert score(archs, 2) == [2.0, 3.0, 4.0] and score(archs[:1], 8) == [8.0]
    assert score(archs, 2) == [2.0, 3.0, 4.0] and calls == [(3, 2), (1, 8)]  # the second call scored nothing
    again = ScoreBook(tmp_path / "s.jsonl")
    assert again.get(archs[0], 8) == 8.0 and again.get(archs[0], 2) == 2.0 and again.get(archs[1], 8) is None
    items = again.items()  # each arch on the most batches it has, those on the most first
    assert [(a.id, n) for a, _, n in items][0] == (archs[0].id, 8) and len(items) == 3


def test_scorer_key_follows_weights_and_settings(tmp_path: Path) -> None:
    w = tmp_path / "supernet.safetensors"
    w.write_bytes(b"weights one")
    k = scorer_key(w, split="val", batches=4, device="cpu", precision="fp32")
    assert k == scorer_key(w, split="val", batches=4, device="cpu", precision="fp32")
    assert k != scorer_key(w, split="val", batches=8, device="cpu", precision="fp32")
    assert k != scorer_key(w, split="val", batches=4, device="cuda", precision="fp32")
    w.write_bytes(b"weights two")  # trained further: another scorer
    assert k != scorer_key(w, split="val", batches=4, device="cpu", precision="fp32")
