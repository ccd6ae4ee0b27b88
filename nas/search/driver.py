"""The search loop: ask -> evaluate (one batched call) -> tell -> record, resumable.

Everything evaluated is in `run_dir/journal.log` as soon as its batch is told, so a killed search
loses at most the batch in flight. A resume replays the recorded results through `tell`, in order
(searchers derive every random choice from the seed and the results told, see base.py), so random,
evolution and hat end with exactly the trials of an uninterrupted run; tpe and nsga2 continue from
their study, which holds their state.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from space import Arch, SearchSpace, make_rng
from space.errors import UserError

from nas.search import study as rec
from nas.search.base import REUSED, InfeasibleBudget, make_searcher, resolve_options, strategy_class
from nas.search.budget import format_duration

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from optuna.trial import FrozenTrial

Batch = Callable[[list[Arch]], list[float]]
KNOWN_LIMIT = 50  # the best archs already scored within the budget that join a search's answer


@dataclass(frozen=True)
class SearchResult:
    strategy: str
    run_dir: Path
    trials: tuple[dict[str, Any], ...]  # number, arch_id, loss, latency_s, strategy, arch (JSON); in order told
    best: dict[str, Any] | None  # the trial with the lowest finite loss (all are within the budget)
    best_arch: Arch | None

    def frame(self) -> "pd.DataFrame":
        import pandas as pd  # only when asked for: the search itself does not need it
        return pd.DataFrame(list(self.trials), columns=list(rec.ROW))


def check_reachable(space: SearchSpace, latency: Batch, budget_s: float, seed: int, samples: int = 300,
                    hardware: str = "", what: str = "predicted latency") -> None:
    """Fails fast, naming the smallest predicted latency, when no arch is predicted within budget."""
    rng = make_rng(seed)
    archs = [space.smallest()] + [space.sample(rng) for _ in range(samples)]
    lats = latency(archs)
    if min(lats) > budget_s:
        i = min(range(len(archs)), key=lats.__getitem__)
        on = f" on {hardware}" if hardware else ""
        raise InfeasibleBudget(
            f"no arch of {space.name} is predicted within {format_duration(budget_s)}{on}: the smallest {what} "
            f"is {format_duration(lats[i])} (arch {archs[i].id}); raise --latency-budget")


def run_search(space: SearchSpace, strategy: str, *, evaluate: Batch, latency: Batch, budget_s: float,
               iterations: int, batch: int, run_dir: Path, seed: int, options: dict[str, Any] | None = None,
               progress: Callable[[int, float | None], None] | None = None, hardware: str = "",
               bound: Batch | None = None, known: Sequence[tuple[Arch, float]] | None = None,
               known_limit: int = KNOWN_LIMIT) -> SearchResult:
    """Evaluates `iterations` archs within the latency budget (resuming `run_dir`).

    evaluate: archs -> validation losses (math.inf: failed), one call per batch.
    latency: archs -> predicted latencies in seconds (batched; called once per candidate draw).
    bound: archs -> the upper bounds of those predictions that must be within `budget_s` (default:
    the predictions themselves); both are recorded with every trial.
    progress: called as progress(evaluated, best loss so far or None) after every batch.
    hardware: the device's name, for the message when no arch fits the budget.
    known: (arch, loss) scored before with the same fitness (scores.ScoreBook). When the search
    first completes, the best `known_limit` of them within the budget that it did not score itself
    are recorded as trials of strategy "reused", in a study of their own (the strategy never reads
    them), and join the result, so the answer is the better of this search's and theirs: never
    worse than a search without them, and never worse than an arch known within a smaller budget.
    None: no reuse (a run's reused trials are then left out of the result).
    """
    for name, value in (("iterations", iterations), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{name}={value!r} must be a positive integer")
    if not (isinstance(budget_s, (int, float)) and math.isfinite(budget_s) and budget_s > 0):
        raise UserError(f"latency budget {budget_s!r} must be a positive number of seconds")
    cls = strategy_class(strategy)
    opts = asdict(resolve_options(strategy, options))
    bound = bound or latency
    check_reachable(space, bound, budget_s, seed, hardware=hardware,
                    what="predicted latency" if bound is latency else "predicted latency (its upper bound)")

    predicted: dict[str, tuple[float, float]] = {}

    def predict(arch: Arch) -> tuple[float, float]:
        if arch.id not in predicted:
            predicted[arch.id] = (float(latency([arch])[0]), float(bound([arch])[0]))
        return predicted[arch.id]

    def latency_of(arch: Arch) -> float:
        return predict(arch)[0]

    study = rec.open_study(run_dir, cls.directions, run_settings(space, strategy, seed, budget_s, opts))
    rec.fail_running(study)  # trials in flight when a previous run died
    searcher = make_searcher(strategy, space, lambda a: predict(a)[1] <= budget_s, seed, study=study, **opts)
    done = rec.evaluated(study)
    if done and not cls.records_own_trials:
        archs = [Arch.from_json(t.user_attrs["arch"]) for t in done]
        searcher.tell(archs, [t.values[0] for t in done], [t.user_attrs["latency_s"] for t in done])
    count = len(done)
    try:
        while count < iterations:
            archs = searcher.ask(min(batch, iterations - count))
            if not archs:
                raise RuntimeError(f"{strategy} proposed nothing with all results told")  # a strategy bug
            lats = [latency_of(a) for a in archs]  # known: the predicate computed them
            losses = [float(v) for v in evaluate(archs)]
            if len(losses) != len(archs):
                raise ValueError(f"evaluate returned {len(losses)} losses for {len(archs)} archs")
            losses = [math.inf if math.isnan(v) else v for v in losses]
            searcher.tell(archs, losses, lats, [{"latency_bound_s": predict(a)[1]} for a in archs])
            if not cls.records_own_trials:
                for arch, loss, lat in zip(archs, losses, lats):
                    rec.record(study, space, arch, loss, lat, strategy, bound_s=predict(arch)[1])
            count += len(archs)
            if progress is not None:
                best = _best(rec.evaluated(study))
                progress(count, None if best is None else best.values[0])
    except BaseException:
        rec.fail_running(study)  # what was told is recorded; the batch in flight is not
        raise
    reused = None
    if known is not None:
        reused = rec.open_reused(run_dir)
        if not rec.evaluated(reused):  # recorded once, when the search first completes
            add_known(reused, study, space, known, known_limit, budget_s, latency, bound)
    return _result(strategy, Path(run_dir), study, reused)


def add_known(reused: "optuna.Study", study: "optuna.Study", space: SearchSpace, known: Sequence[tuple[Arch, float]],
              limit: int, budget_s: float, latency: Batch, bound: Batch) -> None:
    """Records the best `limit` known archs within the budget that the search did not score itself,
    as trials of strategy REUSED in the run's `reused` study, once the search is done: they never
    steer it (its strategy reads its own study alone), but they compete for the answer."""
    have = {t.user_attrs["arch_id"] for t in rec.evaluated(study)}
    fits = [(a, float(v)) for a, v in known if math.isfinite(v) and a.id not in have and space.contains(a)]
    if not fits:
        return
    bounds = bound([a for a, _ in fits])  # one batched call, however many archs earlier searches scored
    best = sorted(((a, v, b) for (a, v), b in zip(fits, bounds) if b <= budget_s), key=lambda p: (p[1], p[0].id))[:limit]
    for (arch, loss, bound_s), lat in zip(best, latency([a for a, _, _ in best]) if best else []):
        rec.record(reused, space, arch, loss, float(lat), REUSED, bound_s=float(bound_s))


def run_settings(space: SearchSpace, strategy: str, seed: int, budget_s: float, options: dict[str, Any]) -> dict:
    """What a resumed run must share with the recorded one."""
    return {"space": space_label(space), "strategy": strategy, "seed": seed, "budget_s": float(budget_s),
            "options": options}


def space_label(space: SearchSpace) -> str:
    """`name@hash`: a resume must not run on a space whose definition changed under the same name."""
    digest = hashlib.sha256(json.dumps(space.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    return f"{space.name}@{digest}"


def _best(trials: list["FrozenTrial"]) -> "FrozenTrial | None":
    finite = [t for t in trials if math.isfinite(t.values[0])]
    return min(finite, key=lambda t: (t.values[0], t.number)) if finite else None


def _result(strategy: str, run_dir: Path, study: "optuna.Study", reused: "optuna.Study | None" = None) -> SearchResult:
    """The search's own trials, then the reused ones (numbered on after them)."""
    own = [rec.row(t) for t in rec.evaluated(study)]
    first = 1 + max((t["number"] for t in own), default=-1)
    rows = own + [{**rec.row(t), "number": first + k} for k, t in enumerate(rec.evaluated(reused) if reused else [])]
    finite = [t for t in rows if math.isfinite(t["loss"])]
    best = min(finite, key=lambda t: (t["loss"], t["number"])) if finite else None
    return SearchResult(strategy=strategy, run_dir=run_dir, trials=tuple(rows), best=best,
                        best_arch=None if best is None else Arch.from_json(best["arch"]))
