"""The one interface every search strategy implements: `ask` for candidates, `tell` their fitness.

A searcher is built with the space, a feasibility predicate (the latency budget: the driver
predicts latency) and a seed. It only ever proposes archs that are members of the space, satisfy
the predicate, and were never proposed or told before (de-duplication by `arch.id`).

Reproducibility and resume: every random choice is drawn from an RNG derived from
(strategy, seed, candidate index), never from one stream that advances with each call. So a
searcher's proposals are a pure function of the seed and of the results told so far, and replaying
a recorded run's results through `tell` rebuilds exactly the state the run had (see driver.py).
"""
from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import numpy as np

from space import Arch, SearchSpace
from space.errors import UserError
from space.options import build, check_fields, check_int
from space.registry import Registry

if TYPE_CHECKING:
    from nas.search.surrogate import LossModel

Feasible = Callable[[Arch], bool]
REUSED = "reused"  # the strategy recorded for results scored by earlier searches (driver.add_known)


class InfeasibleBudget(UserError):
    """The latency budget admits no (or too few new) archs: raised instead of sampling forever."""


@dataclass(frozen=True)
class SearchOptions:
    """Options every strategy takes; each strategy extends this with its own (frozen) fields."""

    max_attempts: int = 200  # draws per wanted candidate before giving up with InfeasibleBudget

    def __post_init__(self) -> None:
        check_fields(self, label=lambda name: f"option {name}")


@dataclass(frozen=True)
class Result:
    arch: Arch
    loss: float  # validation loss; math.inf for a candidate that failed
    latency_s: float | None


class Searcher(ABC):
    name: ClassVar[str]
    Options: ClassVar[type[SearchOptions]] = SearchOptions
    # (loss, latency) for the recorded study, so the dashboard draws a Pareto front
    directions: ClassVar[tuple[str, ...]] = ("minimize", "minimize")
    # True: the searcher's own Optuna trials are the recorded ones (the driver then passes the
    # journal-backed study in and neither records nor replays; the study carries the state)
    records_own_trials: ClassVar[bool] = False

    @classmethod
    def population_options(cls, population: int) -> dict[str, Any] | None:
        """A population size (`--population`, >= 2) in this strategy's own options; None: it has none."""
        return None

    def __init__(self, space: SearchSpace, feasible: Feasible, seed: int, **options: Any) -> None:
        self.space, self.feasible, self.seed = space, feasible, int(seed)
        self.opts = self.Options(**options)
        # the same predicate over many archs at once (one batched latency prediction); the driver
        # sets it, seeding (budget_seeds) asks it about thousands of archs
        self.feasible_many: Callable[[Sequence[Arch]], list[bool]] = lambda archs: [self.feasible(a) for a in archs]
        self._seeds: list[Arch] | None = None
        self.told: list[Result] = []
        self._told_ids: set[str] = set()
        self._seen: set[str] = set()  # proposed or told: never proposed again
        self._cheap: dict[str, float] = {}  # arch id -> its cheap loss, where the driver told one
        self._model: tuple[int, Any] | None = None  # (results told, the accuracy model fitted on them)
        self._rows: dict[str, np.ndarray] = {}  # the accuracy model's inputs, per arch id

    @abstractmethod
    def ask(self, n: int) -> list[Arch]:
        """Up to n new, feasible members of the space (fewer only where a strategy must wait for
        results, e.g. at the end of a generation)."""

    def tell(self, archs: Sequence[Arch], losses: Sequence[float],
             latencies: Sequence[float] | None = None, attrs: Sequence[dict[str, Any]] | None = None) -> None:
        """Fitness of evaluated archs (lower is better; math.inf = failed), in the order asked.
        Archs need not come from this instance's `ask`: a resume replays recorded results. `attrs`:
        what to record with each (strategies that record their own trials keep it)."""
        for k, (arch, loss, latency) in enumerate(zip_results(archs, losses, latencies)):
            if arch.id in self._told_ids:
                raise ValueError(f"arch {arch.id} was already told")
            cheap = (attrs[k] if attrs else {}).get("cheap_loss")
            if cheap is not None and math.isfinite(float(cheap)):
                self._cheap[arch.id] = float(cheap)
            self._told_ids.add(arch.id)
            self._seen.add(arch.id)
            self.told.append(Result(arch, loss, latency))

    # ---- helpers for strategies ---------------------------------------------------------------
    def seeds(self, n: int) -> list[Arch]:
        """The first `n` members of an initial population that reaches the budget's corners
        (seeding.budget_seeds), computed once; a pure function of the space, budget and seed."""
        if self._seeds is None:
            from nas.search.seeding import budget_seeds
            self._seeds = budget_seeds(self.space, self.feasible_many, n, self.seed) if n else []
        return self._seeds[:n]

    def _child(self, parent: Arch, rng: random.Random, prob: float, stack_prob: float) -> Arch:
        """A mutation of `parent`: with `stack_prob` one whole-stack move (space.moves.stack_move),
        else each gene resampled with `prob` (HAT)."""
        if stack_prob and rng.random() < stack_prob:
            from space.moves import stack_move
            return stack_move(self.space, parent, rng)
        return self.space.mutate(parent, rng, prob=prob)

    def _screened(self, draw: Callable[[random.Random, int], Arch], screen: int, min_fit: int = 10
                  ) -> Callable[[random.Random, int], Arch]:
        """`draw` screened by an accuracy model of the results told (nas.search.surrogate): up to
        `screen` draws that are feasible, new members of the space, the one predicted best first.
        With screen 1, or fewer than `min_fit` results told, `draw` itself."""
        if screen <= 1 or len(self.told) < min_fit:
            return draw

        def screened(rng: random.Random, k: int) -> Arch:
            found: list[Arch] = []
            ids: set[str] = set()  # drawn and checked already this place
            last = None
            for _ in range(4):  # rounds of `screen` draws, feasibility predicted for each round at once
                drawn: dict[str, Arch] = {}
                for _ in range(screen):
                    last = draw(rng, k)
                    if last.id not in self._seen and self.space.contains(last):
                        drawn.setdefault(last.id, last)
                fresh = [a for a in drawn.values() if a.id not in ids]
                found += [a for a, ok in zip(fresh, self.feasible_many(fresh) if fresh else []) if ok]
                ids.update(a.id for a in fresh)
                if len(found) >= screen:
                    break
            if not found:
                return last  # _propose rejects it and draws again
            model = self.accuracy_model()
            return found[int(np.argmin(model.predict(found[:screen])))] if model is not None else found[0]
        return screened

    def accuracy_model(self) -> "LossModel | None":
        """The accuracy model of the results told so far (each arch's cheap loss where known, else
        the loss told), fitted once per number of results; None while fewer than 2 are finite."""
        from nas.search.surrogate import LossModel
        if self._model is None or self._model[0] != len(self.told):
            told = [r for r in self.told if math.isfinite(r.loss)]
            model = (LossModel(self.space, [r.arch for r in told], [self._cheap.get(r.arch.id, r.loss) for r in told],
                               self._rows) if len(told) >= 2 else None)
            self._model = (len(self.told), model)
        return self._model[1]

    def _seeded_draw(self, seeds: list[Arch], draw: Callable[[random.Random, int], Arch], first: int = 0
                     ) -> Callable[[random.Random, int], Arch]:
        """`draw` where candidate k < first + len(seeds) is seeds[k - first] on its first attempt
        (a seed already evaluated, or infeasible, falls back to `draw`)."""
        tried: set[int] = set()

        def seeded(rng: random.Random, k: int) -> Arch:
            i = k - first
            if 0 <= i < len(seeds) and k not in tried:
                tried.add(k)
                return seeds[i]
            return draw(rng, k)
        return seeded

    
    def _rng(self, *key: object) -> random.Random:
        # A str seed is hashed with SHA-512: stable across processes (unlike hash()).
        return random.Random("/".join(map(str, (self.name, self.seed, *key))))

    def _propose(self, n: int, draw: Callable[[random.Random, int], Arch], key: str, first: int = 0,
                 exclude: set[str] | None = None) -> list[Arch]:
        """Rejection sampling with a hard cap: candidate k (first <= k < first + n) is drawn
        (repeatedly) as draw(rng, k), rng that of (key, k), until it is a feasible member that is
        new (not in `exclude`, default: seen). At most max_attempts draws per candidate: one that
        finds none is left out (a tight budget admits few archs, and a converged search repeats
        itself); InfeasibleBudget only when no candidate of the n is found."""
        exclude = self._seen if exclude is None else exclude
        out: list[Arch] = []
        ids: set[str] = set()
        counts = {"infeasible": 0, "already seen": 0, "outside the space": 0}
        for k in range(first, first + n):
            rng = self._rng(key, k)
            for _ in range(self.opts.max_attempts):
                arch = draw(rng, k)
                if arch.id in exclude or arch.id in ids:
                    counts["already seen"] += 1
                elif not self.space.contains(arch):
                    counts["outside the space"] += 1  # a bug in a strategy; never proposed
                elif not self.feasible(arch):
                    counts["infeasible"] += 1
                else:
                    out.append(arch)
                    ids.add(arch.id)
                    break
        if not out:
            raise self._infeasible(0, n, counts)
        return out

    def _infeasible(self, found: int, wanted: int, counts: dict[str, int]) -> InfeasibleBudget:
        why = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        hint = (f"the budget admits too few archs of {self.space.name}"
                if counts.get("infeasible", 0) >= counts.get("already seen", 0) else
                "its proposals repeat archs already evaluated (it has converged, or the budget leaves few archs)")
        return InfeasibleBudget(
            f"{self.name} search found only {found} of {wanted} new archs within the latency budget in "
            f"{self.opts.max_attempts} attempts each ({why}): {hint}; raise --latency-budget "
            f"(or the strategy's population or mutation_prob)")


def zip_results(archs: Sequence[Arch], losses: Sequence[float],
                latencies: Sequence[float] | None) -> list[tuple[Arch, float, float | None]]:
    if len(losses) != len(archs) or (latencies is not None and len(latencies) != len(archs)):
        raise ValueError(f"tell: {len(archs)} archs but {len(losses)} losses"
                         + ("" if latencies is None else f" and {len(latencies)} latencies"))
    # NaN is a failed evaluation too; as inf it sorts last instead of poisoning comparisons
    clean = [math.inf if math.isnan(float(v)) else float(v) for v in losses]
    return list(zip(archs, clean, latencies if latencies is not None else [None] * len(archs)))


# ---- registry and factory -----------------------------------------------------------------------

STRATEGIES: Registry[Searcher] = Registry("search strategy")
register = STRATEGIES.register


def strategy_class(name: str) -> type[Searcher]:
    return STRATEGIES.get(name)


def population_options(name: str, population: int | None) -> dict[str, Any]:
    """`--population` in strategy `name`'s terms (each strategy says how, `Searcher.population_options`)."""
    if population is None:
        return {}
    check_int(population, "--population", 2)
    opts = strategy_class(name).population_options(population)
    if opts is None:
        raise UserError(f"--population does not apply to --strategy {name}")
    return opts


def resolve_options(name: str, options: dict[str, Any] | None) -> SearchOptions:
    """The strategy's options with defaults filled in; an unknown key is an error naming it."""
    return build(strategy_class(name).Options, options, f"strategy {name!r}")


def make_searcher(name: str, space: SearchSpace, feasible: Feasible, seed: int, *, study: Any = None,
                  **options: Any) -> Searcher:
    """`study`: the journal-backed Optuna study, used only by strategies that record their own trials."""
    cls = strategy_class(name)
    opts = asdict(resolve_options(name, options))
    if cls.records_own_trials:
        return cls(space, feasible, seed, study=study, **opts)
    return cls(space, feasible, seed, **opts)
