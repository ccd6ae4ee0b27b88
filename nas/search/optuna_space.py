"""The one adapter between the search space and Optuna: archs <-> trial parameters.

Parameters are define-by-run, so a layer's genes exist only for layers below the depth:
`{stack}.embed`, `{stack}.depth`, and per layer i `{stack}.{i}.attn` ("softmax", "window:32"),
`.heads`, `.kv_heads` (where the space has grouped-query choices), `.ffn` (a width, or a ratio of
the embed width, as the space lists them), `.cross_layers` and `.cross_heads` (decoder of an
encoder-decoder). Every parameter always has the same distribution (all the space's choices), as
Optuna's samplers require; choices that break a rule of the space given the other genes (kv_heads
must divide heads; cross_layers <= encoder depth) are repaired to the nearest allowed value, the
smaller on a tie, so the same parameters always give the same arch.
"""
from __future__ import annotations

from typing import Any, Sequence

import optuna
from optuna.distributions import CategoricalDistribution

from space import ATTENTION_TYPES, Arch, Layer, SearchSpace, Stack, StackSpace


# ---- the mapping --------------------------------------------------------------------------------

def attn_labels(ss: StackSpace) -> tuple[str, ...]:
    return tuple(t if p is None else f"{t}:{p}" for t, p in ss.attn_options())


def ffn_labels(ss: StackSpace) -> tuple[int | float, ...]:
    # FFN widths depend on embed where the space gives ratios: the ratio is the gene
    return ss.ffn if ss.ffn is not None else ss.ffn_ratio


def _nearest(value: int, allowed: Sequence[int]) -> int:
    return min(allowed, key=lambda a: (abs(a - value), a))


def distributions(space: SearchSpace) -> dict[str, CategoricalDistribution]:
    """Every parameter any arch of the space can have (layers up to the largest depth)."""
    out: dict[str, CategoricalDistribution] = {}
    for name, ss in space.stacks:
        out[f"{name}.embed"] = CategoricalDistribution(ss.embed)
        out[f"{name}.depth"] = CategoricalDistribution(ss.depth)
        for i in range(max(ss.depth)):
            p = f"{name}.{i}."
            out[p + "attn"] = CategoricalDistribution(attn_labels(ss))
            out[p + "heads"] = CategoricalDistribution(ss.heads)
            if ss.kv_heads is not None:
                out[p + "kv_heads"] = CategoricalDistribution(ss.kv_heads)
            out[p + "ffn"] = CategoricalDistribution(ffn_labels(ss))
            if ss.cross_layers is not None:
                out[p + "cross_layers"] = CategoricalDistribution(ss.cross_layers)
                out[p + "cross_heads"] = CategoricalDistribution(ss.cross_heads)
    if len(space.precision) > 1:
        out["precision"] = CategoricalDistribution(space.precision)
    return out


def suggest_arch(trial: optuna.trial.BaseTrial, space: SearchSpace) -> Arch:
    """The arch of a trial's suggestions (define-by-run), repaired into the space."""
    dists = distributions(space)

    def pick(param: str) -> Any:
        return trial.suggest_categorical(param, dists[param].choices)

    stacks: dict[str, Stack] = {}
    enc_depth = None
    for name, ss in space.stacks:
        embed, depth = pick(f"{name}.embed"), pick(f"{name}.depth")
        layers = []
        for i in range(depth):
            p = f"{name}.{i}."
            kind, _, value = pick(p + "attn").partition(":")
            param = ATTENTION_TYPES[kind].param
            heads = pick(p + "heads")
            kv = heads if ss.kv_heads is None else _nearest(pick(p + "kv_heads"), ss.kv_choices(heads))
            ffn = ss.ffn_choices(embed)[ffn_labels(ss).index(pick(p + "ffn"))]
            cross = {}
            if ss.cross_layers is not None:
                cross = {"cross_layers": _nearest(pick(p + "cross_layers"), ss.cross_choices(enc_depth)),
                         "cross_heads": pick(p + "cross_heads")}
            layers.append(Layer(attn=kind, heads=heads, kv_heads=kv, ffn=ffn, **cross,
                                **({param: int(value)} if param else {})))
        stacks[name] = Stack(embed=embed, layers=tuple(layers))
        enc_depth = depth if name == "encoder" else enc_depth
    precision = pick("precision") if len(space.precision) > 1 else space.precision[0]
    return space.require(Arch(kind=space.kind, head_dim=space.head_dim, vocab_size=space.vocab_size, positions=space.positions,
                              max_len=space.max_len, precision=precision, classes=space.classes, **stacks))


def arch_params(space: SearchSpace, arch: Arch) -> tuple[dict[str, Any], dict[str, CategoricalDistribution]]:
    """The parameters (and their distributions) that `suggest_arch` turns back into `arch`."""
    space.require(arch)
    dists = distributions(space)
    params: dict[str, Any] = {}
    for name, ss in space.stacks:
        stack = getattr(arch, name)
        params[f"{name}.embed"], params[f"{name}.depth"] = stack.embed, stack.depth
        for i, layer in enumerate(stack.layers):
            p = f"{name}.{i}."
            param = ATTENTION_TYPES[layer.attn].param
            params[p + "attn"] = layer.attn if param is None else f"{layer.attn}:{getattr(layer, param)}"
            params[p + "heads"] = layer.heads
            if ss.kv_heads is not None:
                params[p + "kv_heads"] = layer.kv_heads
            params[p + "ffn"] = ffn_labels(ss)[ss.ffn_choices(stack.embed).index(layer.ffn)]
            if ss.cross_layers is not None:
                params[p + "cross_layers"], params[p + "cross_heads"] = layer.cross_layers, layer.cross_heads
    if len(space.precision) > 1:
        params["precision"] = arch.precision
    return params, {k: dists[k] for k in params}
