"""NSGA-II (Optuna's NSGAIISampler) on (loss, latency): a Pareto front under the latency budget.

Parameters are define-by-run, so Optuna's GA crosses over only the genes every trial has (embed,
depth, the first layers); deeper layers' genes are drawn independently at random.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import optuna

from space.options import fraction

from nas.search.base import SearchOptions, register
from nas.search.optuna_search import OptunaSearcher


@dataclass(frozen=True)
class Nsga2Options(SearchOptions):
    population_size: int = 50
    crossover_prob: float = 0.9
    seeded: float = field(default=0.5, metadata=fraction())  # share of the first population seeded towards the budget (seeding.py); 0: Optuna's


@register
class Nsga2(OptunaSearcher):
    name = "nsga2"
    Options = Nsga2Options

    @classmethod
    def population_options(cls, population: int) -> dict[str, int]:
        return {"population_size": population}
    directions = ("minimize", "minimize")

    def _sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.NSGAIISampler(seed=self.seed, population_size=self.opts.population_size,
                                             crossover_prob=self.opts.crossover_prob)
