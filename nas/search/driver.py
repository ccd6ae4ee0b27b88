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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from space import Arch, SearchSpace, make_rng
from space.options import check_int

from nas.search import study as rec
from nas.search.base import REUSED, InfeasibleBudget, make_searcher, resolve_options, strategy_class
from nas.search.budget import Budget, MemoryBudget, format_bytes, format_duration
from nas.search.fidelity import Fidelity, Scorer, final_set, score_batch
from nas.search.report import rank_key

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
    trials: tuple[rec.TrialRow, ...]  # in order told
    best: rec.TrialRow | None  # the lowest loss among those measured on the most batches
    best_arch: Arch | None
    stopped: str | None = None  # why the search ended before its iterations (no new arch within the budget)

    def frame(self) -> "pd.DataFrame":
        import pandas as pd  # only when asked for: the search itself does not need it
        return pd.DataFrame(list(self.trials), columns=list(rec.ROW))


def check_reachable(space: SearchSpace, latency: Batch, budget_s: float, seed: int, samples: int = 300,
                    hardware: str = "", what: str = "predicted latency", memory: Batch | None = None,
                    memory_budget: "MemoryBudget | None" = None) -> None:
    """Fails fast, naming the smallest predicted latency (or memory), when no arch is predicted
    within the budget (and the memory budget)."""
    rng = make_rng(seed)
    archs = [space.smallest()] + [space.sample(rng) for _ in range(samples)]
    lats = latency(archs)
    on = f" on {hardware}" if hardware else ""
    if min(lats) > budget_s:
        i = min(range(len(archs)), key=lats.__getitem__)
        raise InfeasibleBudget(
            f"no arch of {space.name} is predicted within {format_duration(budget_s)}{on}: the smallest {what} "
            f"is {format_duration(lats[i])} (arch {archs[i].id}); raise --latency-budget")
    if memory is not None and memory_budget is not None:
        fits = [(m, a) for a, lat, m in zip(archs, lats, memory(archs)) if lat <= budget_s]
        m, a = min(fits, key=lambda p: (p[0], p[1].id))
        if not memory_budget.admits(m):
            raise InfeasibleBudget(
                f"no arch of {space.name} within {format_duration(budget_s)}{on} fits {memory_budget} of memory: the "
                f"smallest such arch needs {format_bytes(m)} (arch {a.id}); raise --memory-budget")


def run_search(space: SearchSpace, strategy: str, *, evaluate: Callable, latency: Batch, budget_s: float,
               iterations: int, batch: int, run_dir: Path, seed: int, options: dict[str, Any] | None = None,
               progress: Callable[[int, float | None], None] | None = None, hardware: str = "",
               bound: Batch | None = None, known: Sequence[tuple] | None = None,
               known_limit: int = KNOWN_LIMIT, fidelity: Fidelity | None = None,
               tokens: Callable[[int], int] | None = None, reachable: bool = False,
               memory: Batch | None = None, memory_budget: "MemoryBudget | int | str | None" = None,
               runtime: str = "eager") -> SearchResult:
    """Evaluates `iterations` archs within the latency budget (resuming `run_dir`).

    evaluate: archs -> validation losses (math.inf: failed), one call per batch; with `fidelity`,
    (archs, number of validation batches) -> losses on that prefix of the batches: every candidate
    is scored cheaply, the contenders on more batches, and the final top-K on the large set (see
    fidelity.py); `tokens(batches)` says how many tokens a loss on that many batches is measured on.
    latency: archs -> predicted latencies in seconds (batched).
    bound: archs -> the upper bounds of those predictions that must be within `budget_s` (default:
    the predictions themselves); both are recorded with every trial.
    progress: called as progress(evaluated, best loss so far or None) after every batch.
    hardware: the device's name, for the message when no arch fits the budget.
    reachable: the caller checked already that an arch fits (`check_reachable` with these predictions).
    memory: archs -> inference memory in bytes (space.memory), recorded with every trial; with
    `memory_budget`, an arch is within the budgets only when its memory is within that too.
    known: (arch, loss[, batches]) scored before with the same scorer (scores.ScoreBook). When the
    search first completes, the best `known_limit` of them within the budget that it did not score
    itself are recorded as trials of strategy "reused", in a study of their own (the strategy never
    reads them), and compete for the answer, so it is never worse than a search without them, and
    never worse than an arch known within a smaller budget. None: no reuse (a run's reused trials
    are then left out of the result).
    """
    for name, value in (("iterations", iterations), ("batch", batch)):
        check_int(value, name)
    budget = Budget.of(budget_s)
    budget_s = budget.seconds
    mem_budget = MemoryBudget.of(memory_budget) if memory_budget is not None else None
    if mem_budget is not None and memory is None:
        raise ValueError("a memory budget needs `memory` (archs -> bytes)")
    cls = strategy_class(strategy)
    opts = asdict(resolve_options(strategy, options))
    bound = bound or latency
    if not reachable:
        check_reachable(space, bound, budget_s, seed, hardware=hardware,
                        what="predicted latency" if bound is latency else "predicted latency (its upper bound)",
                        memory=memory, memory_budget=mem_budget)
    fid = fidelity or Fidelity.single(1)
    scorer: Scorer = evaluate if fidelity is not None else (lambda archs, n: evaluate(archs))

    def attrs_of(n: int, cheap: float, bound_s: float, mem: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"latency_bound_s": bound_s, "cheap_loss": cheap}
        if mem is not None:
            out["memory_bytes"] = int(mem)
        if fidelity is not None:
            out["batches"] = n
            if tokens is not None:
                out["tokens"] = int(tokens(n))
        return out

    predicted: dict[str, tuple[float, float, int | None]] = {}

    def predict_many(archs: Sequence[Arch]) -> list[tuple[float, float, int | None]]:
        todo = list({a.id: a for a in archs if a.id not in predicted}.values())
        if todo:
            mems = memory(todo) if memory is not None else [None] * len(todo)
            for a, p, b, m in zip(todo, latency(todo), bound(todo), mems):
                predicted[a.id] = (float(p), float(b), None if m is None else int(m))
        return [predicted[a.id] for a in archs]

    def predict(arch: Arch) -> tuple[float, float, int | None]:
        return predicted[arch.id] if arch.id in predicted else predict_many([arch])[0]

    def within(p: tuple[float, float, int | None]) -> bool:
        return budget.admits(p[1]) and (mem_budget is None or mem_budget.admits(p[2]))

    study = rec.open_study(run_dir, cls.directions,
                           run_settings(space, strategy, seed, budget_s, opts, fidelity, mem_budget, runtime))
    rec.fail_running(study)  # trials in flight when a previous run died
    searcher = make_searcher(strategy, space, lambda a: within(predict(a)), seed, study=study, **opts)
    searcher.feasible_many = lambda archs: [within(p) for p in predict_many(archs)]
    done = rec.evaluated(study)
    if done and not cls.records_own_trials:
        archs = [Arch.from_json(t.user_attrs["arch"]) for t in done]
        searcher.tell(archs, [t.values[0] for t in done], [t.user_attrs["latency_s"] for t in done],
                      [{"cheap_loss": t.user_attrs["cheap_loss"]} if "cheap_loss" in t.user_attrs else {} for t in done])
    history = [float(t.user_attrs.get("cheap_loss", t.values[0])) for t in done]  # the hurdle's cheap losses
    count = len(done)
    stopped = None
    try:
        while count < iterations:
            try:
                archs = searcher.ask(min(batch, iterations - count))
            except InfeasibleBudget as e:
                if not count:
                    raise
                stopped = (f"stopped after {count} of {iterations} evaluations: the strategy finds no new arch "
                           f"within the budget ({e})")
                break
            if not archs:
                raise RuntimeError(f"{strategy} proposed nothing with all results told")  # a strategy bug
            lats = [predict(a)[0] for a in archs]  # known: the predicate computed them
            losses, used, cheap = score_batch(archs, scorer, fid, history)
            attrs = [attrs_of(n, c, predict(a)[1], predict(a)[2]) for a, n, c in zip(archs, used, cheap)]
            searcher.tell(archs, losses, lats, attrs)
            if not cls.records_own_trials:
                for arch, loss, lat, extra in zip(archs, losses, lats, attrs):
                    rec.record(study, space, arch, loss, lat, strategy, extra=extra)
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
            add_known(reused, study, space, known, known_limit, budget, latency, bound,
                      lambda n: attrs_of(n, math.nan, math.nan) if fidelity is not None and n else {},
                      memory=memory, memory_budget=mem_budget)
    result = replace(_result(strategy, Path(run_dir), study, reused), stopped=stopped)
    if fidelity is None or not fid.multi:
        return result
    final = final_scores(study, result, scorer, fid, budget)
    return replace(_result(strategy, Path(run_dir), study, reused, final, tokens), stopped=stopped)


def final_scores(study: "optuna.Study", result: SearchResult, scorer: Scorer, fid: Fidelity,
                 budget: Budget | float) -> dict[str, float]:
    """arch id -> loss on the final set, of `final_top` archs within the budget (the best by the
    loss the search holds of each structure, then the next best: fidelity.final_set), and of every reused arch already scored on the final set (free: the
    score book answers). Kept in the study (`final`), so a resumed, finished run does not re-score."""
    recorded = study.user_attrs.get("final")
    if recorded is not None:
        return {k: float(v) for k, v in recorded.items()}
    budget = Budget.of(budget)
    within = [t for t in result.trials if math.isfinite(t["loss"]) and budget.admits(_bound(t))]
    ranked = sorted(within, key=lambda t: (t["loss"], t["number"]))
    by_id = {t["arch_id"]: t for t in ranked}
    top = [by_id[a.id] for a in final_set([Arch.from_json(t["arch"]) for t in ranked], fid.final_top)]
    ids = {t["arch_id"] for t in top}
    top += [t for t in within if t.get("batches") == fid.final_batches and t["arch_id"] not in ids]
    archs = [Arch.from_json(t["arch"]) for t in top]
    losses = scorer(archs, fid.final_batches) if archs else []
    final = {a.id: float(v) for a, v in zip(archs, losses)}
    study.set_user_attr("final", final)
    return final


def _bound(t: dict[str, Any]) -> float:
    b = t.get("latency_bound_s")
    return t["latency_s"] if b is None or b != b else b


def add_known(reused: "optuna.Study", study: "optuna.Study", space: SearchSpace, known: Sequence[tuple],
              limit: int, budget: Budget | float, latency: Batch, bound: Batch,
              attrs: Callable[[int], dict[str, Any]] = lambda n: {}, memory: Batch | None = None,
              memory_budget: "MemoryBudget | None" = None) -> None:
    """Records the best `limit` known archs within the budget that the search did not score itself,
    as trials of strategy REUSED in the run's `reused` study, once the search is done: they never
    steer it (its strategy reads its own study alone), but they compete for the answer. `known`:
    (arch, loss) or (arch, loss, batches); those scored on the most batches come first."""
    have = {t.user_attrs["arch_id"] for t in rec.evaluated(study)}
    fits = [(k[0], float(k[1]), int(k[2]) if len(k) > 2 else 0) for k in known]
    fits = [(a, v, n) for a, v, n in fits if math.isfinite(v) and a.id not in have and space.contains(a)]
    if not fits:
        return
    bounds = bound([a for a, _, _ in fits])  # one batched call, however many archs earlier searches scored
    mems = memory([a for a, _, _ in fits]) if memory is not None else [None] * len(fits)
    budget = Budget.of(budget)
    best = sorted(((a, v, n, b, m) for (a, v, n), b, m in zip(fits, bounds, mems)
                   if budget.admits(b) and (memory_budget is None or memory_budget.admits(m))),
                  key=lambda p: (-p[2], p[1], p[0].id))[:limit]
    for (arch, loss, n, bound_s, mem), lat in zip(best, latency([p[0] for p in best]) if best else []):
        extra = {**attrs(n), "latency_bound_s": float(bound_s)}
        if mem is not None:
            extra["memory_bytes"] = int(mem)
        extra.pop("cheap_loss", None)
        rec.record(reused, space, arch, loss, float(lat), REUSED, extra=extra)


def run_settings(space: SearchSpace, strategy: str, seed: int, budget_s: float, options: dict[str, Any],
                 fidelity: Fidelity | None = None, memory_budget: "MemoryBudget | None" = None,
                 runtime: str = "eager") -> dict:
    """What a resumed run must share with the recorded one (the runtime only when not eager, so that
    runs recorded before there were runtimes still resume)."""
    out = {"space": space_label(space), "strategy": strategy, "seed": seed, "budget_s": float(budget_s),
           "options": options}
    if runtime != "eager":
        out["runtime"] = runtime
    if fidelity is not None:
        out["fidelity"] = fidelity.to_dict()
    if memory_budget is not None:
        out["memory_budget_bytes"] = memory_budget.bytes
    return out


def space_label(space: SearchSpace) -> str:
    """`name@hash`: a resume must not run on a space whose definition changed under the same name."""
    digest = hashlib.sha256(json.dumps(space.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    return f"{space.name}@{digest}"


def _best(trials: list["FrozenTrial"]) -> "FrozenTrial | None":
    finite = [t for t in trials if math.isfinite(t.values[0])]
    return min(finite, key=lambda t: (t.values[0], t.number)) if finite else None


def _result(strategy: str, run_dir: Path, study: "optuna.Study", reused: "optuna.Study | None" = None,
            final: dict[str, float] | None = None, tokens: Callable[[int], int] | None = None) -> SearchResult:
    """The search's own trials, then the reused ones (numbered on after them); an arch scored on the
    final set carries that loss (`search_loss` keeps the one the search held). The best is the lowest
    loss among those measured on the most batches."""
    own = [rec.row(t) for t in rec.evaluated(study)]
    first = 1 + max((t["number"] for t in own), default=-1)
    rows = own + [{**rec.row(t), "number": first + k} for k, t in enumerate(rec.evaluated(reused) if reused else [])]
    if final:
        n = int(study.user_attrs["fidelity"]["final_batches"])
        for t in rows:
            if t["arch_id"] in final:
                t.update(loss=final[t["arch_id"]], batches=n, tokens=int(tokens(n)) if tokens else t.get("tokens"))
    finite = [t for t in rows if math.isfinite(t["loss"])]
    best = min(finite, key=rank_key) if finite else None
    return SearchResult(strategy=strategy, run_dir=run_dir, trials=tuple(rows), best=best,
                        best_arch=None if best is None else Arch.from_json(best["arch"]))
