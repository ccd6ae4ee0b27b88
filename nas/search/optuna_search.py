"""The searcher base for Optuna's samplers (TPE, NSGA-II): their own trials are the recorded ones.

`ask` = study.ask() + define-by-run suggestions (optuna_space). Rejected suggestions (over the
budget, or an arch already proposed) are told back at once as PRUNED, never reaching the driver;
over the budget they carry a violated `latency` constraint, so the sampler learns where the budget
lies. They count toward the attempt cap.
"""
from __future__ import annotations

from abc import abstractmethod
from typing import Any, Sequence

import optuna
from optuna.trial import TrialState

from space import Arch, SearchSpace

from nas.search.base import Feasible, Result, Searcher, zip_results
from nas.search.optuna_space import suggest_arch
from nas.search.study import trial_attrs


class OptunaSearcher(Searcher):
    records_own_trials = True

    def __init__(self, space: SearchSpace, feasible: Feasible, seed: int, *, study: optuna.Study | None = None,
                 **options: Any) -> None:
        super().__init__(space, feasible, seed, **options)
        sampler = self._sampler()
        if study is None:  # standalone (tests, notebooks): an in-memory study
            study = optuna.create_study(directions=list(self.directions), sampler=sampler)
        else:
            # the driver opens the journal-backed study before the searcher exists; the sampler
            # is this searcher's to choose (and a fresh, seeded one on every resume)
            study.sampler = sampler
        self.study = study
        self._pending: dict[str, optuna.Trial] = {}
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if "arch_id" in t.user_attrs:  # a resumed study carries the archs already evaluated
                self._seen.add(t.user_attrs["arch_id"])
                self._told_ids.add(t.user_attrs["arch_id"])

    @abstractmethod
    def _sampler(self) -> optuna.samplers.BaseSampler:
        """A fresh sampler seeded with self.seed."""

    def _enqueue_seeds(self) -> None:
        """A fresh study's first trials: archs seeded towards the budget (seeding.budget_seeds), a
        `seeded` share of the population, for strategies that have both options."""
        n = round(getattr(self.opts, "seeded", 0) * getattr(self.opts, "population_size", 0))
        if n and not self.study.get_trials(deepcopy=False):
            from nas.search.optuna_space import arch_params
            for arch in self.seeds(n):
                self.study.enqueue_trial(arch_params(self.space, arch)[0])

    def ask(self, n: int) -> list[Arch]:
        if self._seeds is None:
            self._enqueue_seeds()
            self._seeds = self._seeds or []
        out: list[Arch] = []
        counts = {"infeasible": 0, "already seen": 0}
        for _ in range(n):
            found = False
            for _ in range(self.opts.max_attempts):
                trial = self.study.ask()
                arch = suggest_arch(trial, self.space)
                for key, value in trial_attrs(arch, self.name).items():
                    trial.set_user_attr(key, value)
                reason = "already seen" if arch.id in self._seen else None
                if reason is None and not self.feasible(arch):
                    reason = "infeasible"
                    trial.set_constraint("latency", 1.0)  # > 0: violated (the predicate gives no margin)
                if reason is None:
                    found = True
                    break
                counts[reason] += 1
                trial.set_user_attr("rejected", reason)
                self.study.tell(trial, state=TrialState.PRUNED)
            if not found:  # left out, as Searcher._propose does; none at all ends the search
                continue
            trial.set_constraint("latency", 0.0)
            self._seen.add(arch.id)
            self._pending[arch.id] = trial
            out.append(arch)
        if not out:
            raise self._infeasible(0, n, counts)
        return out

    def tell(self, archs: Sequence[Arch], losses: Sequence[float],
             latencies: Sequence[float] | None = None, attrs: Sequence[dict[str, Any]] | None = None) -> None:
        if latencies is None and len(self.directions) > 1:
            raise ValueError(f"{self.name} optimises latency too: tell(archs, losses, latencies)")
        for k, (arch, loss, latency) in enumerate(zip_results(archs, losses, latencies)):
            trial = self._pending.pop(arch.id, None)
            if trial is None:
                raise ValueError(f"arch {arch.id} was not proposed by this {self.name} searcher (or already told)")
            if latency is not None:
                trial.set_user_attr("latency_s", float(latency))
            for key, value in (attrs[k] if attrs else {}).items():
                trial.set_user_attr(key, value)
            self.study.tell(trial, [loss, latency][:len(self.directions)])
            self._told_ids.add(arch.id)
            self.told.append(Result(arch, loss, latency))
