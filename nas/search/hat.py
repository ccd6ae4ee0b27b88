"""HAT's evolutionary search (Wang et al. 2020), truncation selection by generation.

Generation 0 is `population` archs, a `seeded` share of them seeded towards the budget
(seeding.budget_seeds), the others uniform samples (HAT's: `seeded` 0). Each later generation keeps the `parents` best archs
(HAT: 25 of 125) and adds `mutations` (50, each gene resampled with p 0.3) of random parents and
`crossovers` (50) of random parent pairs (a mutation is, with `stack_mutation_prob`, one
whole-stack move instead). Parents carry over unchanged, so the parents of every
generation are simply the best archs told so far; HAT re-evaluates them, we do not (the evaluator
caches, and a searcher never proposes an arch twice), so a generation proposes only its children.

Differences from HAT's loop, on purpose: latency rejection sampling has a cap (HAT's hangs forever
on an infeasible budget); children that repeat an already evaluated arch are redrawn, and a
crossover that repeats one is mutated (converged parents would otherwise exhaust the attempts).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from space import Arch, SearchSpace
from space.errors import UserError
from space.options import fraction

from nas.search.base import Feasible, InfeasibleBudget, SearchOptions, Searcher, register


@dataclass(frozen=True)
class HatOptions(SearchOptions):
    population: int = 125  # generation 0
    parents: int = 25
    mutations: int = 50
    crossovers: int = 50
    mutation_prob: float = 0.3
    seeded: float = field(default=0.5, metadata=fraction())  # share of generation 0 seeded towards the budget (seeding.py); 0: HAT's uniform
    stack_mutation_prob: float = 0.5  # chance a mutation is one whole-stack move instead of per-gene resampling

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.parents > self.population:
            raise UserError(f"option parents={self.parents} exceeds population={self.population}")


@register
class HatEvolution(Searcher):
    name = "hat"
    Options = HatOptions

    @classmethod
    def population_options(cls, population: int) -> dict[str, int]:
        if population < 6:
            raise UserError(f"--population {population}: --strategy hat needs at least 6 (2 parents, and 2 "
                            "mutations and 2 crossovers of them)")
        parents = max(2, population // 5)  # HAT's 1:2:2 parents, mutations, crossovers
        return {"population": population, "parents": parents, "mutations": (population - parents) // 2,
                "crossovers": population - parents - (population - parents) // 2}

    def __init__(self, space: SearchSpace, feasible: Feasible, seed: int, **options: Any) -> None:
        super().__init__(space, feasible, seed, **options)
        self._gen = -1
        self._queue: list[Arch] = []

    def _generation(self, k: int) -> tuple[int, int]:
        """(generation, index of its first candidate) of the k-th candidate overall."""
        o = self.opts
        if k < o.population:
            return 0, 0
        g = 1 + (k - o.population) // (o.mutations + o.crossovers)
        return g, o.population + (g - 1) * (o.mutations + o.crossovers)

    def ask(self, n: int) -> list[Arch]:
        g, start = self._generation(len(self._seen))
        if g != self._gen:
            if len(self.told) < start:  # the previous generation's results are still out
                return []
            self._gen, self._queue = g, self._breed(g, start)
        # a batch never straddles two generations: the next one needs this one's results
        out, self._queue = self._queue[:n], self._queue[n:]
        if not out and len(self.told) >= len(self._seen):
            # the generation came out short (a budget that admits few new archs) and is all told:
            # generations are positional (a resume replays them), so the search ends here
            raise InfeasibleBudget(f"hat search bred a generation of fewer new archs within the budget than "
                                   f"its {self.opts.mutations + self.opts.crossovers} places; raise --latency-budget")
        self._seen.update(a.id for a in out)
        return out

    def _breed(self, g: int, start: int) -> list[Arch]:
        """Generation g, a function of the first `start` results alone; minus archs told since
        (a resumed run has replayed part of this generation already)."""
        o = self.opts
        history = self.told[:start]
        before = {r.arch.id for r in history}
        if g == 0:
            draw = self._seeded_draw(self.seeds(round(o.population * o.seeded)), lambda rng, k: self.space.sample(rng))
            archs = self._propose(o.population, draw, "gen0", exclude=before)
        else:
            parents = [r.arch for r in sorted(history, key=lambda r: r.loss)[:o.parents]]

            def draw(rng: random.Random, k: int) -> Arch:
                if k < o.mutations:
                    return self._child(rng.choice(parents), rng, o.mutation_prob, o.stack_mutation_prob)
                a, b = rng.sample(parents, 2) if len(parents) > 1 else (parents[0], parents[0])
                child = self.space.crossover(a, b, rng)
                # Parents that have converged cross into archs already evaluated, which HAT
                # would just evaluate again; we never repeat one, so such a child is mutated.
                return self.space.mutate(child, rng, prob=o.mutation_prob) if child.id in before else child

            archs = self._propose(o.mutations + o.crossovers, draw, f"gen{g}", exclude=before)
        return [a for a in archs if a.id not in self._seen]
