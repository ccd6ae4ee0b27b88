"""Initial populations that reach the corners of the space, towards the budget.

`budget_seeds` gives a population's first members: the largest uniform arch (every layer alike)
that fits the budget for each embed x depth x precision x attention type (largest first), and archs
grown from the smallest, one random feasible step at a time, until no step fits (space.moves). The
rest of the population stays uniform samples, so the search still explores the middle.
"""
from __future__ import annotations

import random
from typing import Callable, Sequence

from space import Arch, SearchSpace
from space.cost import analytic_cost
from space.moves import grow, uniform_archs

Many = Callable[[Sequence[Arch]], list[bool]]


def _group(arch: Arch) -> tuple:
    """embed, depth and attention type of each stack, and the precision."""
    return (arch.precision, *[(s.embed, s.depth, s.layers[0].attn) for _, s in arch.stacks])


def budget_seeds(space: SearchSpace, feasible_many: Many, n: int, seed: int, grown: float = 0.25) -> list[Arch]:
    """Up to `n` distinct feasible archs: a `grown` share of them grown to the budget from the
    smallest arch, the others the largest (by parameters) feasible uniform arch of each group of
    embed x depth x attention type x precision, largest first. Deterministic in (space, budget, seed)."""
    if n < 1:
        return []
    rng = random.Random(f"seeds/{seed}")
    n_grown = min(n, max(1, round(n * grown))) if n > 1 else 0
    out: dict[str, Arch] = {}
    uniform = uniform_archs(space)
    fits = [a for a, f in zip(uniform, feasible_many(uniform)) if f]
    best: dict[tuple, tuple[int, Arch]] = {}
    for a in fits:
        size = analytic_cost(a).params
        g = _group(a)
        if g not in best or size > best[g][0]:
            best[g] = (size, a)
    ranked = sorted(best.values(), key=lambda p: (-p[0], p[1].id))
    for _, a in ranked[:n - n_grown]:
        out[a.id] = a
    for k in range(n_grown * 3):  # a few more tries where two growths end on the same arch
        if len(out) >= n:
            break
        start = space.smallest(rng).with_precision(rng.choice(space.precision))
        if not feasible_many([start])[0]:
            continue
        a = grow(space, start, feasible_many, rng)
        out.setdefault(a.id, a)
    for _, a in ranked[n - n_grown:]:  # growth repeated itself: fill with the next uniform archs
        if len(out) >= n:
            break
        out.setdefault(a.id, a)
    return list(out.values())[:n]


__all__ = ["budget_seeds"]
