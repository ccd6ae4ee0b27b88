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
from space.cost import embedding_params, layer_params
from space.moves import grow, uniform_archs

Many = Callable[[Sequence[Arch]], list[bool]]


def _group(arch: Arch) -> tuple:
    """embed, depth and attention type of each stack, and the precision."""
    return (arch.precision, *[(s.embed, s.depth, s.layers[0].attn) for _, s in arch.stacks])


def param_count(arch: Arch) -> int:
    """Weights of the embeddings and layers (space.cost's own terms, without analytic_cost's
    per-workload FLOPs and bytes: fast enough to rank thousands of archs)."""
    enc = arch.encoder.embed if arch.encoder is not None else None
    return sum(embedding_params(arch, name) + sum(layer_params(layer, s.embed, arch.head_dim, arch.max_len,
                                                               enc if name == "decoder" else None)
                                                  for layer in s.layers) for name, s in arch.stacks)


def largest_uniform(space: SearchSpace, feasible_many: Many, chunk: int = 4, skip: bool = True) -> list[Arch]:
    """Per group (`_group`: embed, depth and attention type of each stack, precision), the uniform arch
    with the most parameters that is feasible (the first in enumeration order among equals): the
    uniform arch grown to the budget. Largest first. Each group is asked about from the largest down,
    `chunk` at a time; with `skip`, a group whose smallest member is infeasible is not asked about
    at all, so a search predicts a few hundred archs rather than every uniform one (a predictor that
    is not monotone in size can then miss a group: 1 of 83 at 60 ms on xeon-2vcpu)."""
    groups: dict[tuple, list[tuple[int, int, Arch]]] = {}
    for i, a in enumerate(uniform_archs(space)):
        groups.setdefault(_group(a), []).append((-param_count(a), i, a))
    for members in groups.values():
        members.sort(key=lambda m: (m[0], m[1]))
    alive = (groups if not skip else
             {g: m for g, m, ok in zip(groups, groups.values(), feasible_many([m[-1][2] for m in groups.values()])) if ok})
    found: dict[tuple, tuple[int, int, Arch]] = {}
    at = dict.fromkeys(alive, 0)
    while at:
        asked = [(g, alive[g][k]) for g, start in at.items() for k in range(start, min(start + chunk, len(alive[g])))]
        answers = feasible_many([m[2] for _, m in asked])
        for (g, m), ok in zip(asked, answers):
            if ok and g not in found:
                found[g] = m  # the first feasible in (params desc, enumeration) order
        at = {g: start + chunk for g, start in at.items() if g not in found and start + chunk < len(alive[g])}
        chunk *= 2  # groups that fit only their smaller members: fewer rounds
    return [m[2] for m in sorted(found.values(), key=lambda m: (m[0], m[2].id))]


def budget_seeds(space: SearchSpace, feasible_many: Many, n: int, seed: int, grown: float = 0.25) -> list[Arch]:
    """Up to `n` distinct feasible archs: a `grown` share of them grown to the budget from the
    smallest arch, the others the largest (by parameters) feasible uniform arch of each group of
    embed x depth x attention type x precision, largest first. Deterministic in (space, budget, seed)."""
    if n < 1:
        return []
    rng = random.Random(f"seeds/{seed}")
    n_grown = min(n, max(1, round(n * grown))) if n > 1 else 0
    out: dict[str, Arch] = {}
    ranked = largest_uniform(space, feasible_many)
    for a in ranked[:n - n_grown]:
        out[a.id] = a
    for k in range(n_grown * 3):  # a few more tries where two growths end on the same arch
        if len(out) >= n:
            break
        start = space.smallest(rng).with_precision(rng.choice(space.precision))
        if not feasible_many([start])[0]:
            continue
        a = grow(space, start, feasible_many, rng)
        out.setdefault(a.id, a)
    for a in ranked[n - n_grown:]:  # growth repeated itself: fill with the next uniform archs
        if len(out) >= n:
            break
        out.setdefault(a.id, a)
    return list(out.values())[:n]


__all__ = ["budget_seeds", "largest_uniform", "param_count"]
