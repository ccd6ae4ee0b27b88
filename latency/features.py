"""What a latency predictor sees of an arch: the space's per-layer encoding plus analytic costs
under the workload, including an analytic roofline estimate on the target hardware. One schema,
versioned, saved inside every predictor bundle."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from latency.hardware import Hardware
from space import ATTENTION_TYPES, Arch, Layer, SearchSpace, Workload, analytic_cost
from space.cost import Cost

FEATURE_VERSION = 2  # 2: exact op counts, blocked windows, precision (one-hot, bytes, its peak)
ANALYTIC = ("analytic.params", "analytic.flops", "analytic.bytes", "analytic.ops", "roofline.compute_s",
            "roofline.memory_s", "roofline.overhead_s", "roofline.total_s")


def roofline_terms(cost: Cost, hw: Hardware, end: str = "point", precision: str = "fp32") -> tuple[float, float, float, float]:
    """(compute, memory, overhead, total) seconds: each invocation of each part takes
    max(FLOPs / achieved FLOP/s, bytes / achieved bandwidth); every dispatched op pays the fixed
    overhead. `end`: the profile's estimated constants ("point"), or the ends of their ranges;
    `precision`: its peak where the profile lists one (else the profile's own dtype's)."""
    peak = hw.peak_flops.get(precision, hw.peak) * hw.eff("flops", end)
    bw = hw.memory_bandwidth * hw.eff("bandwidth", end)
    compute = memory = bound = 0.0
    for _, flops, moved, _ in cost.invocations:
        c, m = flops / peak, moved / bw
        compute, memory, bound = compute + c, memory + m, bound + max(c, m)
    overhead = cost.ops * hw.overhead(end)
    return compute, memory, overhead, bound + overhead


# ---- the arch's encoding: per-layer features (zero past the depth), counts per attention type, precision
def layer_feature_names() -> list[str]:
    """Per-layer feature names, for the attention types registered now (a type registered later,
    a plugin's or a test's, adds its indicator)."""
    return ["present", *[f"is_{t}" for t in ATTENTION_TYPES], "heads", "kv_heads", "attn_width",
            "kv_width", "ffn", "window", "proj_len", "cross_layers", "cross_heads"]


def layer_features(layer: Layer, head_dim: int) -> list[float]:
    return [1.0, *[float(layer.attn == t) for t in ATTENTION_TYPES], layer.heads, layer.kv_heads,
            layer.heads * head_dim, layer.kv_heads * head_dim, layer.ffn, layer.window or 0,
            layer.proj_len or 0, layer.cross_layers or 0, layer.cross_heads or 0]


def arch_feature_names(space: SearchSpace) -> list[str]:
    names = []
    for name, ss in space.stacks:
        names += [f"{name}.embed", f"{name}.depth"]
        for i in range(max(ss.depth)):
            names += [f"{name}.{i}.{f}" for f in layer_feature_names()]
        names += [f"{name}.n_{t}" for t in ATTENTION_TYPES]
    if len(space.precision) > 1:
        names += [f"precision.{p}" for p in space.precision]
    return names


def encode(space: SearchSpace, arch: Arch) -> np.ndarray:
    """One fixed-length vector of an arch of `space` (names: arch_feature_names)."""
    out: list[float] = []
    absent = [0.0] * len(layer_feature_names())
    for name, ss in space.stacks:
        stack = getattr(arch, name)
        out += [stack.embed, stack.depth]
        for i in range(max(ss.depth)):
            out += layer_features(stack.layers[i], arch.head_dim) if i < stack.depth else absent
        out += [sum(layer.attn == t for layer in stack.layers) for t in ATTENTION_TYPES]
    if len(space.precision) > 1:
        out += [float(arch.precision == p) for p in space.precision]
    return np.asarray(out, dtype=np.float64)


def feature_names(space: SearchSpace) -> list[str]:
    return arch_feature_names(space) + list(ANALYTIC)


def featurize(archs: Iterable[Arch], space: SearchSpace, workload: Workload, hw: Hardware) -> np.ndarray:
    rows = []
    for arch in archs:
        cost = analytic_cost(arch, workload)
        rows.append(np.concatenate([encode(space, arch), [cost.params, cost.flops, cost.bytes, cost.ops,
                                                         *roofline_terms(cost, hw, precision=arch.precision)]]))
    if not rows:
        return np.zeros((0, len(feature_names(space))))
    return np.asarray(rows, dtype=np.float64)
