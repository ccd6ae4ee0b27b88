"""TPE (Optuna's TPESampler): minimises the loss alone, under the latency budget.

Its study is single-objective: Optuna's TPE turns multi-objective (MOTPE) whenever the study has
two directions, and would then spend evaluations on fast, bad archs the budget does not ask for.
So a TPE run records values (loss) and keeps the latency in the `latency_s` attribute; every other
strategy records (loss, latency).
"""
from __future__ import annotations

from dataclasses import dataclass

import optuna

from nas.search.base import SearchOptions, register
from nas.search.optuna_search import OptunaSearcher


@dataclass(frozen=True)
class TpeOptions(SearchOptions):
    n_startup_trials: int = 10  # random trials before TPE models (rejected proposals count too)


@register
class Tpe(OptunaSearcher):
    name = "tpe"
    Options = TpeOptions
    directions = ("minimize",)

    def _sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=self.opts.n_startup_trials)
