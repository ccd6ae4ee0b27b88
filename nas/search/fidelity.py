"""Fitness with fidelity where it decides: a cheap loss for every candidate, more validation batches
for the contenders, and the final top-K re-scored on a large set before the answer is chosen.

The Evolved Transformer (So et al. 2019) gives more training to candidates that clear a hurdle, the
mean fitness of those before them (progressive dynamic hurdles); with a weight-sharing supernet the
fidelity is the number of validation batches a loss is measured on. Every loss here is a mean over a
prefix of one list of batches spread over the whole validation split
(`supernet.tasks.spread_batches`), so a loss on more batches refines the cheap one (the batches
already run are not run again) and all fidelities estimate the same quantity.

- every candidate: `batches` batches (its cheap loss);
- a candidate whose cheap loss is within the best `hurdle` fraction of all cheap losses of the run
  so far (its own batch included) is scored on `hurdle_batches`, and the strategy is told that loss;
- when the search is done, `final_top` archs within the budget are scored on `final_batches`, and
  the answer is the best of them: the best (by the loss the search holds) of each structure (depth
  and width of each stack, precision: `structure`), best first, then the next best of any (`final_set`).
  A search converges on one family, whose members share their estimate's error: at 35 ms on
  xeon-2vcpu, one evolution's 5 best held losses were 2-layer neighbours, all 0.0025 worse on the
  final set than on 8 batches, while a 3-layer arch ranked 7th beat them there. Archs that earlier
  searches scored on the final set join them at no cost (see driver.run_search `known`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Sequence

from space import Arch
from space.errors import UserError
from space.options import check_fields, flag, fraction

# archs, number of batches -> losses
Scorer = Callable[[list[Arch], int], list[float]]


@dataclass(frozen=True)
class Fidelity:
    batches: int = 2  # every candidate (2 x 16 windows of 128 bytes: 4,096 tokens)
    hurdle_batches: int = 8  # the contenders
    hurdle: float = field(default=0.2, metadata=fraction(low_open=True))  # fraction of the cheap losses so far a contender is within
    final_batches: int = 64  # the final top-K (131,072 tokens on the shipped supernet)
    final_top: int = 5
    # tokens per scored window of a language model (the context each loss is measured at): None, the
    # supernet's training length; a long-context search scores at its workload's prompt length
    context: int | None = field(default=None, metadata={"least": 2})

    def __post_init__(self) -> None:
        check_fields(self, label=lambda name: {"batches": "--eval-batches", "context": "--eval-context"}.get(name, flag(name)))
        if not self.batches <= self.hurdle_batches <= self.final_batches:
            raise UserError(f"validation batches must grow by stage: --eval-batches {self.batches}, "
                            f"--hurdle-batches {self.hurdle_batches}, --final-batches {self.final_batches}; "
                            "give each at least the one before")

    @classmethod
    def single(cls, batches: int) -> "Fidelity":
        """Every candidate on `batches` batches, no hurdle, no re-score (one fidelity, as before)."""
        return cls(batches=batches, hurdle_batches=batches, final_batches=batches, final_top=1)

    @property
    def multi(self) -> bool:
        return self.final_batches > self.batches

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if out["context"] is None:  # as runs recorded before the setting existed
            del out["context"]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Fidelity":
        return cls(**d)


def hurdle_value(cheap: Sequence[float], fraction: float) -> float:
    """The cheap loss a contender must be within: the `fraction` quantile (lower) of the finite
    cheap losses so far; inf when there are none."""
    finite = sorted(v for v in cheap if math.isfinite(v))
    if not finite:
        return math.inf
    return finite[max(0, math.ceil(fraction * len(finite)) - 1)]


def score_batch(archs: list[Arch], scorer: Scorer, fidelity: Fidelity, history: list[float]
                ) -> tuple[list[float], list[int], list[float]]:
    """(losses the strategy is told, the batches each was measured on, the cheap losses) of one
    batch of candidates; `history` (the run's cheap losses so far) is extended with this batch's."""
    cheap = [_clean(v) for v in scorer(archs, fidelity.batches)]
    if len(cheap) != len(archs):
        raise ValueError(f"evaluate returned {len(cheap)} losses for {len(archs)} archs")
    history.extend(cheap)
    losses, batches = list(cheap), [fidelity.batches] * len(archs)
    if fidelity.hurdle_batches > fidelity.batches:
        bar = hurdle_value(history, fidelity.hurdle)
        up = [i for i, v in enumerate(cheap) if math.isfinite(v) and v <= bar]
        if up:
            for i, v in zip(up, scorer([archs[i] for i in up], fidelity.hurdle_batches)):
                losses[i], batches[i] = _clean(v), fidelity.hurdle_batches
    return losses, batches, cheap


def structure(arch: Arch) -> tuple:
    """What a final set spreads over: the precision, and each stack's embed and depth."""
    return (arch.precision, *[(name, s.embed, s.depth) for name, s in arch.stacks])


def final_set(ranked: Sequence[Arch], k: int) -> list[Arch]:
    """`k` of `ranked` (best first): the first of each `structure`, in order, then the rest in order."""
    firsts: dict[tuple, Arch] = {}
    for a in ranked:
        firsts.setdefault(structure(a), a)
    chosen = list(firsts.values())[:k]
    ids = {a.id for a in chosen}
    chosen += [a for a in ranked if a.id not in ids][:k - len(chosen)]
    return sorted(chosen, key=list(ranked).index)


def _clean(v: float) -> float:
    v = float(v)
    return math.inf if math.isnan(v) else v


__all__ = ["Fidelity", "Scorer", "final_set", "hurdle_value", "score_batch", "structure"]
