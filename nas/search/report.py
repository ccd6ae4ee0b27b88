"""A search run folder: what `nas search` writes and `nas export` reads.

    run.json      the typed run record (SearchRun): what was searched, how, for which hardware
    trials.csv    every evaluated arch: number, arch_id, loss, latency_s, strategy, arch (JSON)
    ranking.json  arch ids within the budget, best first
    best.yaml     the best arch;  pareto.csv / pareto.png  the loss-latency front
    journal.log   the Optuna journal (resume; optuna-dashboard)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from nas.search.budget import Budget, MemoryBudget
from space import Arch, Workload
from space.files import atomic_write_json, atomic_write_text, read_json
from space.arch import dump_yaml
from space.errors import UserError
from space.record import Record

if TYPE_CHECKING:
    from nas.search.study import TrialRow  # the study module loads optuna


@dataclass(frozen=True)
class SearchRun(Record):
    FORMAT = "hwnas-search-run"
    VERSION = 5  # 2: `reused`; 3: `fidelity`; 4: the memory budget; 5: the runtime
    WHAT = "search run record"
    HINT = "run `nas search` to make one"

    hardware: str
    space: str  # the space's name
    space_def: dict[str, Any]  # SearchSpace.to_dict()
    workload: Workload
    latency_budget_s: float
    latency_source: str  # measured | calibrated | kernels | analytic
    strategy: str
    seed: int
    iterations: int
    supernet: str  # absolute path of the supernet folder
    eval_batches: int = 4
    options: dict[str, Any] = field(default_factory=dict)
    best: str | None = None  # arch id of the best arch within the budget, if any
    evaluated: int = 0
    confidence: float = 0.5  # an arch is within the budget when its latency's bound at this confidence is
    calibration: dict[str, Any] = field(default_factory=dict)  # the reference arch timed now: today's scale
    analytic_range: dict[str, Any] = field(default_factory=dict)  # analytic models: the best arch at either end
    reused: int = 0  # trials taken from earlier searches' scores of the same supernet (strategy "reused")
    # validation batches per fitness stage (nas.search.fidelity.Fidelity.to_dict()); {}: one fidelity
    fidelity: dict[str, Any] = field(default_factory=dict)
    best_loss: float | None = None  # the answer's loss, on best_tokens validation tokens
    best_tokens: int | None = None
    best_budget_used: float | None = None  # the answer's latency bound / the budget
    memory_budget_bytes: int | None = None  # the second budget: peak inference memory (space.memory)
    best_memory_bytes: int | None = None  # the answer's
    runtime: str = "eager"  # what the budget is for: eager PyTorch, or decoding replayed from CUDA graphs

    @classmethod
    def _decode(cls, body: dict[str, Any], where: str) -> dict[str, Any]:
        return {**body, "workload": Workload.from_dict(body["workload"], f"{where}: workload")}

    @classmethod
    def _upgrade(cls, body: dict[str, Any], version: int, where: str) -> dict[str, Any]:
        return body  # versions 1-4 lack only fields with defaults (`reused`, `fidelity`, `best_*`, `memory_*`, `runtime`)


def finite(trials: Sequence[TrialRow]) -> list[TrialRow]:
    return [t for t in trials if t.get("loss") is not None and t["loss"] < math.inf]


def bound_of(trial: TrialRow) -> float:
    """The latency a trial's budget check used: its bound, or (older runs) its point prediction."""
    b = trial.get("latency_bound_s")
    return trial["latency_s"] if b is None or b != b else b


def rank_key(t: TrialRow) -> tuple:
    """Archs whose loss was measured on more validation batches first (a search's final re-score
    decides its answer), then by loss."""
    n = t.get("batches")
    n = n if isinstance(n, (int, float)) and n == n else 0
    return (-n, t["loss"], t.get("number", 0))


def feasible(trials: Sequence[TrialRow], budget: "Budget | float", memory_budget: "MemoryBudget | int | None" = None
             ) -> list[TrialRow]:
    """Trials within the budget (their latency bound) and the memory budget if any, best first: the
    lowest loss among those measured on the most batches (rank_key)."""
    budget = Budget.of(budget)
    mem = MemoryBudget.of(memory_budget) if memory_budget is not None else None

    def fits(t: TrialRow) -> bool:
        m = _int_or_none(t.get("memory_bytes"))
        return mem is None or (m is not None and mem.admits(m))
    return sorted((t for t in finite(trials) if budget.admits(bound_of(t)) and fits(t)), key=rank_key)


def pareto(trials: Sequence[TrialRow]) -> list[TrialRow]:
    """Trials no other trial beats on both loss and latency, by latency."""
    front, best = [], math.inf
    for t in sorted(finite(trials), key=lambda t: (t["latency_s"], t["loss"])):
        if t["loss"] < best:
            front.append(t)
            best = t["loss"]
    return front


def plot_pareto(trials, front, budget_s: float, best, path: Path, title: str,
                memory_budget: int | None = None) -> None:
    """Loss against predicted latency (the front, the budget, the answer); beside it, where trials
    carry their inference memory, loss against memory (and the memory budget, if any)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    done = finite(trials)
    mem = [t for t in done if _int_or_none(t.get("memory_bytes")) is not None]
    fig, axes = plt.subplots(1, 2 if mem else 1, figsize=(12 if mem else 7, 4.5), squeeze=False)
    ax = axes[0][0]
    ax.scatter([t["latency_s"] * 1e3 for t in done], [t["loss"] for t in done], s=8, c="0.6", label="evaluated")
    ax.plot([t["latency_s"] * 1e3 for t in front], [t["loss"] for t in front], "o-", c="tab:blue", ms=4,
            label="Pareto front")
    ax.axvline(budget_s * 1e3, c="tab:red", ls="--", label=f"budget {budget_s * 1e3:g} ms")
    if best:
        ax.scatter([best["latency_s"] * 1e3], [best["loss"]], marker="*", s=160, c="tab:orange", zorder=5,
                   label="best within budget")
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("validation loss, inherited weights (nats/token)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    if mem:
        mx = axes[0][1]
        mx.scatter([t["memory_bytes"] / 1e6 for t in mem], [t["loss"] for t in mem], s=8, c="0.6", label="evaluated")
        if memory_budget:
            mx.axvline(memory_budget / 1e6, c="tab:red", ls="--", label=f"memory budget {memory_budget / 1e6:.3g} MB")
        if best and _int_or_none(best.get("memory_bytes")) is not None:
            mx.scatter([best["memory_bytes"] / 1e6], [best["loss"]], marker="*", s=160, c="tab:orange", zorder=5,
                       label="best within the budgets")
        mx.set_xlabel("inference memory for the workload (MB: weights, decode state, activations)")
        mx.set_ylabel("validation loss, inherited weights (nats/token)")
        mx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_run(run_dir: Path, trials: Sequence[TrialRow], record: SearchRun) -> SearchRun:
    """Writes every file of the run folder; run.json last (a folder with a run.json is whole)."""
    import pandas as pd
    ranked = feasible(trials, record.latency_budget_s, record.memory_budget_bytes)
    best = ranked[0] if ranked else None
    atomic_write_text(run_dir / "trials.csv", pd.DataFrame(list(trials)).to_csv(index=False))
    front = pareto(trials)
    atomic_write_text(run_dir / "pareto.csv", pd.DataFrame(front).to_csv(index=False))
    atomic_write_json(run_dir / "ranking.json", [t["arch_id"] for t in ranked])
    if best:
        atomic_write_text(run_dir / "best.yaml", dump_yaml(Arch.from_json(best["arch"]).to_dict()))
    plot_pareto(trials, front, record.latency_budget_s, best, run_dir / "pareto.png",
                f"{record.space} on {record.hardware} ({record.latency_source} latency), {record.strategy}",
                record.memory_budget_bytes)
    record = record.replace(best=best["arch_id"] if best else None, evaluated=len(trials),
                            best_loss=float(best["loss"]) if best else None,
                            best_tokens=_int_or_none(best.get("tokens")) if best else None,
                            best_budget_used=budget_used(best, record.latency_budget_s) if best else None,
                            best_memory_bytes=_int_or_none(best.get("memory_bytes")) if best else None)
    record.write(run_dir / "run.json")
    return record


def budget_used(trial: TrialRow, budget: "Budget | float") -> float:
    """The share of the budget a trial's latency bound takes (1.0: all of it)."""
    return Budget.of(budget).used(bound_of(trial))


def _int_or_none(v: Any) -> int | None:
    try:
        return None if v is None or v != v else int(v)
    except (TypeError, ValueError):
        return None


def read_run(run_dir: str | Path) -> SearchRun:
    run_dir = Path(run_dir)
    if not (run_dir / "run.json").is_file():
        raise UserError(f"{run_dir}: not a search run folder (no run.json); run `nas search` first")
    return SearchRun.read(run_dir / "run.json")


def ranked(run_dir: str | Path, rank: int) -> tuple[SearchRun, Arch, TrialRow]:
    """(run record, the arch at `rank` (1 = best) within the budget, its trial row)."""
    import pandas as pd
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    ranking = read_json(run_dir / "ranking.json")
    if not 1 <= rank <= len(ranking):
        raise UserError(f"--rank {rank}: the run ranks {len(ranking)} archs within its budget"
                        + (f"; pick 1..{len(ranking)}" if ranking else "; none to export"))
    trials = pd.read_csv(run_dir / "trials.csv")
    row = trials[trials.arch_id == ranking[rank - 1]].iloc[0].to_dict()
    return run, Arch.from_json(row["arch"]), row


__all__ = ["SearchRun", "feasible", "pareto", "plot_pareto", "ranked", "read_run", "write_run"]
