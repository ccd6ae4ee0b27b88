"""Scores that outlive a search: every arch a search scores with a supernet, kept per scorer.

An arch's fitness (its validation loss with inherited weights) is a pure function of the supernet's
weights and of the windows it is scored on, so a budget sweep, or the same search again with another
seed or strategy, need not score an arch twice. Each scorer (the supernet file's digest, the data
split and batches, the device kind and the evaluation precision) has one append-only JSON-lines
file, `$HWNAS_HOME/scores/KEY.jsonl`; a line is written with one `write` call on a file opened for
appending, so a killed search, or two searches at once, lose at most their own last line (a torn
line is skipped when read).

Reuse also makes the answers of one supernet consistent across budgets: the best archs already
scored within a search's budget join its answer (see driver.run_search `known`), so a larger budget
never returns a worse arch than a smaller budget's search found before it with the same latency
predictions.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Callable, Sequence

from space import Arch

SCORES_VERSION = 2  # bump when the evaluation itself changes: older scores are then not reused (2: per batches)
Scorer = Callable[[list[Arch], int], list[float]]  # archs, validation batches -> losses


def file_digest(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def scorer_key(weights: str | Path, **settings: object) -> str:
    """The name of a scorer's score file: the weights' content digest and every setting that
    changes a loss (split, batches, data, device kind, precision)."""
    text = json.dumps({"v": SCORES_VERSION, "weights": file_digest(weights), **settings}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def scores_root() -> Path:
    from latency.store import store_root
    return store_root() / "scores"


class ScoreBook:
    """(arch id, batches) -> loss of one scorer, backed by its JSON-lines file. A loss on the first
    `batches` validation batches of the scorer's list (the search's fidelities are prefixes of it)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._scores: dict[tuple[str, int], float] = {}
        self._archs: dict[str, Arch] = {}
        self.reused = 0  # losses answered from the book instead of scored (this process)
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    d = json.loads(line)
                    arch = Arch.from_json(d["arch"])
                    loss, batches = float(d["loss"]), int(d["batches"])
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line, or an arch this hwnas no longer reads
                if arch.id == d.get("id") and math.isfinite(loss):
                    self._scores[arch.id, batches] = loss
                    self._archs[arch.id] = arch

    @classmethod
    def for_scorer(cls, key: str, root: Path | None = None) -> "ScoreBook":
        return cls((root or scores_root()) / f"{key}.jsonl")

    def __len__(self) -> int:
        return len(self._archs)

    def get(self, arch: Arch, batches: int = 0) -> float | None:
        return self._scores.get((arch.id, batches))

    def add(self, archs: Sequence[Arch], losses: Sequence[float], batches: int) -> None:
        """Keeps the finite losses (a failed evaluation may be transient: it is scored again)."""
        lines = []
        for arch, loss in zip(archs, losses):
            if math.isfinite(loss) and (arch.id, batches) not in self._scores:
                self._scores[arch.id, batches] = float(loss)
                self._archs[arch.id] = arch
                lines.append(json.dumps({"id": arch.id, "batches": batches, "loss": float(loss),
                                         "arch": arch.to_json()}) + "\n")
        if lines:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                end = os.lseek(fd, 0, os.SEEK_END)
                if end and os.pread(fd, 1, end - 1) != b"\n":
                    lines.insert(0, "\n")  # after a torn line: ours starts on a line of its own
                os.write(fd, "".join(lines).encode())
            finally:
                os.close(fd)

    def items(self) -> list[tuple[Arch, float, int]]:
        """Every arch kept with its loss on the most batches it was scored on: (arch, loss, batches),
        those on the most batches first, then best first."""
        most: dict[str, tuple[int, float]] = {}
        for (aid, n), loss in self._scores.items():
            if aid not in most or n > most[aid][0]:
                most[aid] = (n, loss)
        return sorted(((self._archs[a], v, n) for a, (n, v) in most.items()), key=lambda p: (-p[2], p[1], p[0].id))

    def wrap(self, evaluate: Scorer) -> Scorer:
        """`evaluate` that scores only the archs not in the book at that many batches (one batched
        call) and keeps them; `evaluate(archs, batches)`, or `evaluate(archs)` where no batches are
        given (a fitness of one fidelity, kept as batches 0)."""
        def losses(archs: list[Arch], batches: int = 0) -> list[float]:
            # batches 0: a fitness of one fidelity, `evaluate(archs)`
            todo = [a for a in archs if (a.id, batches) not in self._scores]
            scored = (list(evaluate(todo, batches) if batches else evaluate(todo))) if todo else []
            if len(scored) != len(todo):
                raise ValueError(f"evaluate returned {len(scored)} losses for {len(todo)} archs")
            got = dict(zip((a.id for a in todo), scored))
            self.add(todo, [float(got[a.id]) for a in todo], batches)
            self.reused += len(archs) - len(todo)
            return [float(got[a.id]) if a.id in got else self._scores[a.id, batches] for a in archs]
        return losses
