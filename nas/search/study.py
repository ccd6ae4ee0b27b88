"""The Optuna glue for *recording*: every trial of every strategy lands in one journal-backed study.

`run_dir/journal.log` holds study "search": values (loss, latency) (TPE: loss alone, see tpe.py),
and, when earlier searches' scores are reused, study "reused" (driver.add_known);
the arch's genes as parameters (so optuna-dashboard shows them), and user attributes `arch` (JSON),
`arch_id`, `latency_s`, `strategy`. Optuna-driven strategies (tpe, nsga2) tell their own trials;
the others are added with `record` after evaluation. The study's user attributes hold the run's
settings, which a resume must match.

Open it with: optuna-dashboard run_dir/journal.log
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence, TypedDict

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from space import Arch, SearchSpace
from space.errors import UserError

from nas.search.optuna_space import arch_params

STUDY_NAME = "search"
# The archs earlier searches of the supernet scored that joined this run's answer (driver.add_known):
# a study of their own, so the search's study, which its strategy reads, holds only its own trials.
REUSED_STUDY = "reused"


def journal_path(run_dir: Path) -> Path:
    return Path(run_dir) / "journal.log"


def trial_attrs(arch: Arch, strategy: str, latency_s: float | None = None) -> dict[str, Any]:
    attrs: dict[str, Any] = {"arch": arch.to_json(), "arch_id": arch.id, "strategy": strategy}
    if latency_s is not None:
        attrs["latency_s"] = float(latency_s)
    return attrs


def open_study(run_dir: Path, directions: Sequence[str], settings: dict[str, Any]) -> optuna.Study:
    """Creates the run's study, or loads it when `settings` equal the recorded ones."""
    # Optuna logs every trial at INFO; that would drown the search's own progress line.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(journal_path(run_dir))))
    study = optuna.create_study(storage=storage, study_name=STUDY_NAME, directions=list(directions),
                                load_if_exists=True)
    settings = json.loads(json.dumps(settings))  # as the journal gives them back (lists, floats)
    recorded = study.user_attrs
    if not recorded:
        for key, value in settings.items():
            study.set_user_attr(key, value)
    else:
        _compare(run_dir, recorded, settings)
    return study


def open_reused(run_dir: Path) -> optuna.Study:
    """The run's study of reused archs, values (loss, latency), in the same journal."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(journal_path(run_dir))))
    return optuna.create_study(storage=storage, study_name=REUSED_STUDY, directions=["minimize", "minimize"],
                               load_if_exists=True)


def check_resumable(run_dir: Path, settings: dict[str, Any]) -> int:
    """Before any long work: fails with one line when `run_dir` holds a journal of a different
    search; returns how many trials it already holds (0 for a new run). Writes nothing."""
    path = journal_path(run_dir)
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(path)))
    try:
        study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    except KeyError:
        return 0
    _compare(run_dir, study.user_attrs, json.loads(json.dumps(settings)))
    return len(evaluated(study))


def _compare(run_dir: Path, recorded: dict[str, Any], settings: dict[str, Any]) -> None:
    if any(recorded.get(k) != v for k, v in settings.items()):
        diff = "; ".join(f"{k}: recorded {_show(recorded.get(k))}, now {_show(v)}"
                         for k, v in settings.items() if recorded.get(k) != v)
        raise UserError(f"{journal_path(run_dir)} holds a different search ({diff}); "
                        "resume it with the same settings or use another --out")


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def fail_running(study: optuna.Study) -> int:
    """Marks trials left RUNNING by a killed search as FAIL (their archs may be proposed again).
    Assumes one search per run directory at a time."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in running:
        study.tell(t.number, state=TrialState.FAIL)
    return len(running)


def record(study: optuna.Study, space: SearchSpace, arch: Arch, loss: float, latency_s: float,
           strategy: str, bound_s: float | None = None, extra: dict[str, Any] | None = None) -> None:
    """Adds an evaluated arch of a strategy that is not Optuna-driven (or one reused from earlier
    searches, to the run's REUSED_STUDY)."""
    params, dists = arch_params(space, arch)
    attrs = trial_attrs(arch, strategy, latency_s)
    if bound_s is not None:
        attrs["latency_bound_s"] = float(bound_s)
    attrs.update(extra or {})
    study.add_trial(optuna.trial.create_trial(
        values=[loss, latency_s], params=params, distributions=dists, user_attrs=attrs))


def evaluated(study: optuna.Study) -> list[FrozenTrial]:
    """The evaluated trials, in the order they were told (rejected proposals are PRUNED, not here)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted((t for t in trials if "arch" in t.user_attrs), key=lambda t: t.number)


# loss: on `batches` validation batches (`tokens` labels; empty for a search of one fidelity), the
# final re-score's where the arch had one; search_loss: what the strategy was told
class TrialRow(TypedDict):
    """One evaluated arch, as SearchResult.trials, trials.csv and a DataFrame row hold it."""
    number: int
    arch_id: str
    loss: float  # validation loss (nats/token) on `batches` batches (`tokens` tokens); inf: failed
    batches: int | None  # None: a fitness of one fidelity
    tokens: int | None
    latency_s: float  # predicted (point)
    latency_bound_s: float  # the upper bound the budget was checked against
    memory_bytes: int | None  # inference memory for the workload (space.memory); None: not computed
    strategy: str
    search_loss: float  # what the strategy was told (before the final re-score)
    arch: str  # Arch.to_json()


ROW = tuple(TrialRow.__annotations__)


def row(t: FrozenTrial) -> TrialRow:
    """One evaluated trial as a flat record (SearchResult.trials, a DataFrame row)."""
    latency = t.user_attrs.get("latency_s", math.nan)
    a = t.user_attrs
    return {"number": t.number, "arch_id": a["arch_id"], "loss": t.values[0], "batches": a.get("batches"),
            "tokens": a.get("tokens"), "latency_s": latency, "latency_bound_s": a.get("latency_bound_s", latency),
            "memory_bytes": a.get("memory_bytes"),
            "strategy": a["strategy"], "search_loss": t.values[0], "arch": a["arch"]}
