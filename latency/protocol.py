"""A timing protocol for noisy machines.

Timing one model many times in a row measures the machine's mood at that moment as much as the
model: on a shared 2-core VM, runs drift 10-25% over minutes. So a group of models is timed in
*interleaved rounds* (each round times every model once, in a rotating order), after a warm-up;
each model's latency is the median of its rounds, its spread the relative interquartile range; a
model whose spread is too wide is re-measured in further interleaved rounds, up to a cap, and its
final spread is recorded so that predictors can weigh it.

The clock is injected (`Timer`), so the logic is tested without timing anything.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Hashable, Protocol as _Protocol

from space.errors import UserError

BACKENDS = ("torch", "onnxruntime")  # what runs a model while it is timed (latency.runner)


class Timer(_Protocol):
    def __call__(self, fn: Callable[[], object], reps: int) -> float:
        """Seconds per call of `fn`, over `reps` back-to-back calls."""


def cpu_timer(fn: Callable[[], object], reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def cuda_timer(fn: Callable[[], object], reps: int) -> float:
    """CUDA events around the calls, then a synchronize: the GPU's time, not the launch queue's."""
    import torch
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000.0 / reps


@dataclass(frozen=True)
class TimingProtocol:
    warmup: int = 2  # untimed calls per model before the rounds
    rounds: int = 5  # interleaved rounds; each times every model once
    reps: int = 1  # calls per timed sample
    max_spread: float = 0.05  # relative IQR above which a model is re-measured ...
    extra_rounds: int = 6  # ... in at most this many further rounds

    def __post_init__(self) -> None:
        if self.rounds < 3:
            raise UserError(f"timing protocol: rounds={self.rounds}; use at least 3 (a median needs them)")
        if self.warmup < 0 or self.reps < 1 or self.extra_rounds < 0 or self.max_spread <= 0:
            raise UserError("timing protocol: warmup >= 0, reps >= 1, extra_rounds >= 0, max_spread > 0")


@dataclass(frozen=True)
class Timing:
    median: float  # seconds
    spread: float  # relative IQR: (q75 - q25) / median
    samples: tuple[float, ...]
    remeasured: int  # extra rounds this model took part in
    ratio: float | None = None  # median over rounds of (this model / the reference model, same round)


def relative_iqr(samples: list[float]) -> float:
    if len(samples) < 2:
        return float("inf")
    q = statistics.quantiles(samples, n=4, method="inclusive")
    med = statistics.median(samples)
    return (q[2] - q[0]) / med if med > 0 else float("inf")


def measure(models: dict[Hashable, Callable[[], object]], protocol: TimingProtocol = TimingProtocol(),
            timer: Timer = cpu_timer, reference: Hashable | None = None) -> dict[Hashable, Timing]:
    """Times every model of the group with the protocol; returns one Timing per key.

    With a `reference` (one of the keys, a fixed model timed in every group), each model also gets
    the median of its per-round ratio to the reference: the machine's slow drift between groups
    (minutes apart) multiplies both and cancels in the ratio. The reference takes part in every
    extra round."""
    keys = list(models)
    for key in keys:
        for _ in range(protocol.warmup):
            models[key]()
    samples: dict[Hashable, list[float]] = {k: [] for k in keys}
    ratios: dict[Hashable, list[float]] = {k: [] for k in keys}
    extra = {k: 0 for k in keys}

    def one_round(subset: list[Hashable], r: int) -> None:
        shift = r % len(subset)  # rotate the order: no model is always first after a pause
        now = {}
        for key in subset[shift:] + subset[:shift]:
            now[key] = timer(models[key], protocol.reps)
            samples[key].append(now[key])
        if reference is not None:
            for key, t in now.items():
                ratios[key].append(t / now[reference])

    for r in range(protocol.rounds):
        one_round(keys, r)
    for r in range(protocol.extra_rounds):
        wide = [k for k in keys if relative_iqr(samples[k]) > protocol.max_spread]
        if not wide:
            break
        if reference is not None and reference not in wide:
            wide.append(reference)
        one_round(wide, r)
        for k in wide:
            extra[k] += 1
    return {k: Timing(statistics.median(samples[k]), relative_iqr(samples[k]), tuple(samples[k]), extra[k],
                      statistics.median(ratios[k]) if ratios[k] else None) for k in keys}
