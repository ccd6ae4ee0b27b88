"""Moves that reach the corners of a space: uniform archs, archs grown to a budget, and mutations
that move a whole stack.

A uniform draw of per-layer heads, kv heads, FFN and attention type lands in the middle of the space,
while the wide, uniform corners are where a sandwich-trained supernet is best trained and where the
most accurate arch within a budget usually is. So the searches' populations start from:

- `uniform_archs`: every arch whose layers are all identical (a few thousand in the default space),
  of which `budget_seeds` (nas.search.seeding) keeps the largest that fit each embed x depth x
  precision x attention type;
- `grow`: from the smallest arch, one step up at a time (a wider embed, one layer's FFN or heads,
  one more layer), a random feasible step each time, until no step fits;

and their mutations include `stack_move`: all FFNs or all heads one step up or down, the embed one
step, depth +-1, another precision, one attention type on every layer, every layer made a copy of
one, or a single gene of one layer moved to a neighbouring value (the local step near the budget).
"""
from __future__ import annotations

import itertools
import random
from typing import Any, Callable, Sequence

from space.arch import Arch
from space.space import SearchSpace, StackSpace, _build_stack, _genome, _repair, make_rng

Many = Callable[[Sequence[Arch]], list[bool]]
STACK_MOVES = ("embed", "ffn", "heads", "depth", "precision", "attn", "uniform", "step")


def _layer_options(ss: StackSpace, enc_depth: int | None) -> list[dict[str, Any]]:
    """Every distinct layer (as genes) of a stack."""
    out = []
    for kind, heads, ffn in itertools.product(ss.attn_options(), ss.heads, range(len(ss.ffn_choices(ss.embed[0])))):
        for kv in ss.kv_choices(heads):
            base = {"attn": kind, "heads": heads, "kv_heads": kv, "ffn": ffn}
            if ss.cross_layers is None:
                out.append(base)
            else:
                out += [{**base, "cross_layers": c, "cross_heads": h}
                        for c in ss.cross_choices(enc_depth) for h in ss.cross_heads]
    return out


def uniform_count(space: SearchSpace) -> int:
    """How many uniform archs (every layer of a stack identical) the space has."""
    n = len(space.precision)
    if space.kind != "encoder-decoder":
        ss = space.stacks[0][1]
        return n * len(ss.embed) * len(ss.depth) * len(_layer_options(ss, None))
    enc, dec = space.encoder, space.decoder
    per_enc = len(enc.embed) * len(_layer_options(enc, None))
    return n * sum(per_enc * len(dec.embed) * len(dec.depth) * len(_layer_options(dec, d)) for d in enc.depth)


def uniform_archs(space: SearchSpace, limit: int = 8192, rng: Any = 0, draw: int = 2048) -> list[Arch]:
    """Every uniform arch of the space (each stack's layers identical), or, where there are more
    than `limit` (encoder-decoder spaces), `draw` distinct ones drawn uniformly with `rng`."""
    if uniform_count(space) <= limit:
        out: list[Arch] = []
        for precision in space.precision:
            for stacks in _uniform_stacks(space, space.stacks, None):
                out.append(space._arch(stacks, precision))
        return out
    r, seen, out = make_rng(rng), set(), []
    while len(out) < draw:
        stacks, enc_depth = {}, None
        for name, ss in space.stacks:
            embed, depth = r.choice(ss.embed), r.choice(ss.depth)
            stacks[name] = _build_stack(ss, embed, [r.choice(_layer_options(ss, enc_depth))] * depth)
            enc_depth = depth if name == "encoder" else enc_depth
        arch = space._arch(stacks, r.choice(space.precision))
        if arch.id not in seen:
            seen.add(arch.id)
            out.append(arch)
    return out


def _uniform_stacks(space: SearchSpace, stacks, enc_depth: int | None):
    if not stacks:
        yield {}
        return
    (name, ss), rest = stacks[0], stacks[1:]
    for embed, depth in itertools.product(ss.embed, ss.depth):
        for genes in _layer_options(ss, enc_depth):
            stack = _build_stack(ss, embed, [genes] * depth)
            for others in _uniform_stacks(space, rest, depth if name == "encoder" else enc_depth):
                yield {name: stack, **others}


# ---- genome helpers -------------------------------------------------------------------------------

def _genomes(space: SearchSpace, arch: Arch) -> dict[str, tuple[int, list[dict[str, Any]]]]:
    return {name: _genome(ss, getattr(arch, name)) for name, ss in space.stacks}


def _assemble(space: SearchSpace, genomes: dict[str, tuple[int, list[dict[str, Any]]]], precision: str,
              rng: random.Random) -> Arch:
    """An arch from per-stack (embed, layer genes), genes repaired (kv heads, cross-attention depth)."""
    stacks, enc_depth = {}, None
    for name, ss in space.stacks:
        embed, layers = genomes[name]
        for genes in layers:
            _repair(genes, ss, rng, enc_depth)
        stacks[name] = _build_stack(ss, embed, layers)
        enc_depth = len(layers) if name == "encoder" else enc_depth
    return space._arch(stacks, precision)


def _shift(choices: Sequence, value: Any, step: int) -> Any:
    """The neighbour `step` places from `value` in `choices` (sorted), clamped to the ends."""
    ordered = sorted(choices)
    i = ordered.index(value) if value in ordered else min(range(len(ordered)), key=lambda k: abs(ordered[k] - value))
    return ordered[max(0, min(len(ordered) - 1, i + step))]


def _nearest_kv(ss: StackSpace, heads: int, kv: int) -> int:
    allowed = ss.kv_choices(heads)
    return kv if kv in allowed else min(allowed, key=lambda k: (abs(k - kv), k))


# ---- growing to a budget ------------------------------------------------------------------------

def growth_steps(space: SearchSpace, arch: Arch) -> list[Arch]:
    """Every arch one step larger than `arch`: a wider embed, one layer's FFN, heads or kv heads one
    step up, or one more layer (a copy of the last); members of the space only, no duplicates."""
    out: dict[str, Arch] = {}
    rng = random.Random(0)  # repairs only; growth itself is deterministic

    def add(name: str, embed: int, layers: list[dict[str, Any]]) -> None:
        genomes = {k: (e, [dict(g) for g in ls]) for k, (e, ls) in _genomes(space, arch).items()}
        genomes[name] = (embed, layers)
        child = _assemble(space, genomes, arch.precision, rng)
        if child.id != arch.id and space.contains(child):
            out.setdefault(child.id, child)

    for name, ss in space.stacks:
        embed, layers = _genome(ss, getattr(arch, name))
        if embed != max(ss.embed):
            add(name, _shift(ss.embed, embed, 1), [dict(g) for g in layers])
        if len(layers) < max(ss.depth) and len(layers) + 1 in ss.depth:
            add(name, embed, [dict(g) for g in layers] + [dict(layers[-1])])
        for i, genes in enumerate(layers):
            nffn = len(ss.ffn_choices(embed))
            for gene, new in (("ffn", min(nffn - 1, genes["ffn"] + 1)), ("heads", _shift(ss.heads, genes["heads"], 1)),
                              ("kv_heads", _shift(ss.kv_choices(genes["heads"]), genes["kv_heads"], 1))):
                if new != genes[gene]:
                    changed = [dict(g) for g in layers]
                    changed[i][gene] = new
                    if gene == "heads":
                        changed[i]["kv_heads"] = _nearest_kv(ss, new, genes["kv_heads"])
                    add(name, embed, changed)
    return list(out.values())


def grow(space: SearchSpace, start: Arch, feasible_many: Many, rng: Any = None, max_steps: int = 500) -> Arch:
    """`start` grown one random feasible step at a time (growth_steps) until no step is feasible."""
    rng = make_rng(rng)
    arch = start
    for _ in range(max_steps):
        steps = growth_steps(space, arch)
        ok = [a for a, f in zip(steps, feasible_many(steps)) if f] if steps else []
        if not ok:
            break
        arch = rng.choice(ok)
    return arch


# ---- whole-stack mutations ----------------------------------------------------------------------

def stack_move(space: SearchSpace, arch: Arch, rng: Any = None, move: str | None = None) -> Arch:
    """`arch` after one move of STACK_MOVES (drawn with `rng` unless named); always a member of the
    space, and different from `arch` where the move can change it."""
    space.require(arch)
    rng = make_rng(rng)
    move = move or rng.choice([m for m in STACK_MOVES if m != "precision" or len(space.precision) > 1])
    genomes = {k: (e, [dict(g) for g in ls]) for k, (e, ls) in _genomes(space, arch).items()}
    precision = arch.precision
    name = rng.choice([n for n, _ in space.stacks])
    ss = dict(space.stacks)[name]
    embed, layers = genomes[name]
    up = rng.choice((-1, 1))
    if move == "embed":
        embed = _flip(ss.embed, embed, up)
    elif move == "ffn":
        n = len(ss.ffn_choices(embed))
        step = up if any(0 <= g["ffn"] + up < n for g in layers) else -up
        for g in layers:
            g["ffn"] = max(0, min(n - 1, g["ffn"] + step))
    elif move == "heads":
        step = up if any(_shift(ss.heads, g["heads"], up) != g["heads"] for g in layers) else -up
        for g in layers:
            heads = _shift(ss.heads, g["heads"], step)
            g["heads"], g["kv_heads"] = heads, _nearest_kv(ss, heads, g["kv_heads"])
    elif move == "depth":
        grow_ok, shrink_ok = len(layers) + 1 in ss.depth, len(layers) - 1 in ss.depth
        if grow_ok and (up > 0 or not shrink_ok):
            layers.insert(rng.randrange(len(layers) + 1), dict(rng.choice(layers)))
        elif shrink_ok:
            layers.pop(rng.randrange(len(layers)))
    elif move == "precision":
        others = [p for p in space.precision if p != precision]
        precision = rng.choice(others) if others else precision
    elif move == "attn":
        kind, params = rng.choice(ss.attention)
        value = rng.choice(params) if params else None
        for g in layers:
            g["attn"] = (kind, value)
    elif move == "uniform":
        model = dict(rng.choice(layers))
        layers = [dict(model) for _ in layers]
    elif move == "step":
        g = rng.choice(layers)
        gene = rng.choice(["attn", "heads", "kv_heads", "ffn"])
        if gene == "attn":
            options = ss.attn_options()
            g["attn"] = options[(options.index(g["attn"]) + up) % len(options)] if len(options) > 1 else g["attn"]
        elif gene == "heads":
            g["heads"] = _flip(ss.heads, g["heads"], up)
            g["kv_heads"] = _nearest_kv(ss, g["heads"], g["kv_heads"])
        elif gene == "kv_heads":
            g["kv_heads"] = _flip(ss.kv_choices(g["heads"]), g["kv_heads"], up)
        else:
            g["ffn"] = _flip(range(len(ss.ffn_choices(embed))), g["ffn"], up)
    else:
        raise ValueError(f"unknown stack move {move!r}; choose from {', '.join(STACK_MOVES)}")
    genomes[name] = (embed, layers)
    return _assemble(space, genomes, precision, rng)


def _flip(choices: Sequence, value: Any, step: int) -> Any:
    """One step in direction `step`, or the other way at an end."""
    moved = _shift(choices, value, step)
    return moved if moved != value else _shift(choices, value, -step)


__all__ = ["STACK_MOVES", "grow", "growth_steps", "stack_move", "uniform_archs", "uniform_count"]
