"""The latency model a search or `nas predict` uses for (hardware, space, workload): a fitted
predictor when one was measured (or calibrated) for it, else the analytic roofline, which needs no
measurement. Every answer says which it is."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from latency.features import featurize
from latency.hardware import Hardware
from latency.store import find_bundle
from space import Arch, SearchSpace, Workload, builtin_spaces, load_space
from space.errors import UserError

ANALYTIC_REL_STD = 0.5  # the uncalibrated roofline: right in kind, often off by 2x in size


@dataclass
class LatencyModel:
    hardware: Hardware
    space: SearchSpace
    workload: Workload
    source: str  # measured | calibrated | analytic
    bundle: object | None = None

    def predict(self, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """(seconds, relative std) per arch."""
        if self.bundle is not None:
            return self.bundle.predict(list(archs))
        x = featurize(archs, self.space, self.workload, self.hardware)
        return x[:, -1].copy(), np.full(len(archs), ANALYTIC_REL_STD)


def latency_model(hw: Hardware, space: SearchSpace, workload: Workload) -> LatencyModel:
    path = find_bundle(hw.name, space.name, workload)
    if path is None:
        return LatencyModel(hw, space, workload, "analytic")
    from latency.bundle import load_bundle
    bundle = load_bundle(path)
    return LatencyModel(hw, space, workload, bundle.source, bundle)


def predictor_status(hw: Hardware, space: SearchSpace, workload: Workload) -> str:
    path = find_bundle(hw.name, space.name, workload)
    if path is None:
        return "analytic only"
    from latency.bundle import load_bundle
    b = load_bundle(path)
    m = b.metrics or {}
    within = f", {m['within_10']:.0%} within ±10%" if "within_10" in m else ""
    return f"{b.source} ({b.dataset.get('rows', '?')} rows{within})"


def space_for(arch: Arch) -> SearchSpace:
    for name in builtin_spaces():
        space = load_space(name)
        if space.contains(arch):
            return space
    raise UserError(f"arch {arch.id} is in none of the shipped spaces; pass --space NAME|PATH")
