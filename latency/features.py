"""What a latency predictor sees of an arch: the space's per-layer encoding plus analytic costs
under the workload, including an analytic roofline estimate on the target hardware. One schema,
versioned, saved inside every predictor bundle."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from latency.hardware import Hardware
from space import Arch, SearchSpace, Workload, analytic_cost
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


def feature_names(space: SearchSpace) -> list[str]:
    return space.feature_names() + list(ANALYTIC)


def featurize(archs: Iterable[Arch], space: SearchSpace, workload: Workload, hw: Hardware) -> np.ndarray:
    rows = []
    for arch in archs:
        cost = analytic_cost(arch, workload)
        rows.append(np.concatenate([space.encode(arch), [cost.params, cost.flops, cost.bytes, cost.ops,
                                                         *roofline_terms(cost, hw, precision=arch.precision)]]))
    if not rows:
        return np.zeros((0, len(feature_names(space))))
    return np.asarray(rows, dtype=np.float64)
