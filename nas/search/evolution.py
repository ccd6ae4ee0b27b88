"""Regularized (aging) evolution with tournament selection (Real et al. 2019).

The first `population` candidates are archs seeded towards the budget (a `seeded` share:
seeding.budget_seeds) and uniform samples. Each later child is a mutation of the best of
`sample_size` members drawn from the population (with `stack_mutation_prob` one whole-stack move,
else each gene resampled with `mutation_prob`; optionally, with `crossover_prob`, a crossover of two
such tournament winners); of `screen` such children, the one an accuracy model learnt from the
results so far predicts best is proposed (nas.search.surrogate). With `aging` the oldest member dies when a child joins, so the
population is always the last `population` results told; without it the worst dies, so it is the
best `population` results. Either way it is a function of the results told so far, which is what
lets a resumed search replay them and continue exactly where it stopped.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from space import Arch
from space.errors import UserError
from space.options import fraction

from nas.search.base import Result, SearchOptions, Searcher, register


@dataclass(frozen=True)
class EvolutionOptions(SearchOptions):
    population: int = 100  # NNI's defaults (P=100, S=25)
    sample_size: int = 25
    mutation_prob: float = 0.3  # per gene, as HAT
    crossover_prob: float = 0.0  # chance a child is a crossover of two tournament winners instead
    aging: bool = True
    seeded: float = field(default=0.5, metadata=fraction())  # share of the first population seeded towards the budget (seeding.py); 0: all uniform
    stack_mutation_prob: float = 0.5  # chance a child is one whole-stack move instead of per-gene resampling
    screen: int = 8  # children drawn per place, the one an accuracy model of the results predicts best proposed (surrogate.py); 1: none

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sample_size > self.population:
            raise UserError(f"option sample_size={self.sample_size} exceeds population={self.population}")


@register
class Evolution(Searcher):
    name = "evolution"
    Options = EvolutionOptions

    @classmethod
    def population_options(cls, population: int) -> dict[str, int]:
        return {"population": population, "sample_size": max(2, population // 4)}  # NNI's 4:1

    def population(self) -> list[Result]:
        if self.opts.aging:
            return self.told[-self.opts.population:]
        # stable sort: among equal losses the earlier result survives
        return sorted(self.told, key=lambda r: r.loss)[:self.opts.population]

    def ask(self, n: int) -> list[Arch]:
        pop = self.population()

        first = len(self._seen)

        def child(rng: random.Random, k: int) -> Arch:
            parent = self._tournament(pop, rng)
            if self.opts.crossover_prob and rng.random() < self.opts.crossover_prob:
                return self.space.crossover(parent, self._tournament(pop, rng), rng)
            return self._child(parent, rng, self.opts.mutation_prob, self.opts.stack_mutation_prob)

        screened = self._screened(child, self.opts.screen) if pop else child

        def draw(rng: random.Random, k: int) -> Arch:
            if k < self.opts.population or not pop:
                return self.space.sample(rng)
            return screened(rng, k)

        if first < self.opts.population and self.opts.seeded:
            draw = self._seeded_draw(self.seeds(round(self.opts.population * self.opts.seeded)), draw)
        out = self._propose(n, draw, "draw", first=first)
        self._seen.update(a.id for a in out)
        return out

    def _tournament(self, pop: list[Result], rng: random.Random) -> Arch:
        # min() keeps the first of equal losses: ties go to the earlier-drawn member
        return min(rng.sample(pop, min(self.opts.sample_size, len(pop))), key=lambda r: r.loss).arch
