"""The latency model a search or `nas predict` uses for (hardware, space, workload): a fitted
predictor when one was measured (or calibrated) for it, else the analytic roofline, which needs no
measurement. Every answer says which it is, how sure it is, and on what scale.

- Uncertainty: a prediction is a log-normal point `seconds` with relative std `rel_std` (the
  predictor's own; for the analytic model, the spread its constants' ranges give), so the upper
  bound at confidence c is seconds * exp(z_c * rel_std). A budget holds for an arch whose bound is
  within it (`confidence`, default 0.9).
- Scale: a measured predictor predicts on its dataset's reference-normalised scale. On the
  measured device itself, `calibrate()` times the reference arch now and multiplies every
  prediction by (now / dataset), so predictions are today's wall clock.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Sequence

import numpy as np

from latency.features import featurize, roofline_terms
from latency.hardware import Hardware
from latency.store import find_bundle
from space import Arch, SearchSpace, Workload, analytic_cost, builtin_spaces, load_space
from space.errors import UserError

ANALYTIC_REL_STD = 0.5  # an uncalibrated roofline without ranged constants: right in kind, often 2x off in size
RANGE_Z = NormalDist().inv_cdf(0.95)  # a profile's constant ranges are read as 5%-95% intervals
DEFAULT_CONFIDENCE = 0.9


def z_of(confidence: float) -> float:
    if not 0.5 <= confidence < 1.0:
        raise UserError(f"--confidence {confidence}: must be in [0.5, 1) (0.5: the point prediction, 0.9: "
                        f"an upper bound 9 archs in 10 stay under)")
    return NormalDist().inv_cdf(confidence)


@dataclass
class LatencyModel:
    hardware: Hardware
    space: SearchSpace
    workload: Workload
    source: str  # measured | calibrated | kernels | analytic
    bundle: object | None = None
    gpu: object | None = None  # latency.gpu.GpuLatency: a GPU's measured kernel tables (source "kernels")
    scale: float = 1.0  # today's wall clock / the dataset's scale (see `calibrate`)
    calibration: dict = field(default_factory=dict)

    def predict(self, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """(seconds, relative std) per arch."""
        if self.bundle is not None:
            seconds, rel = self.bundle.predict(list(archs))
            return seconds * self.scale, rel
        if self.gpu is not None:
            point = self.gpu.seconds(archs, self.hardware.runtime)
            fast, slow = self.predict_range(archs)
            return point, np.maximum(np.log(np.maximum(slow / point, 1.0)) / RANGE_Z, 0.02)
        point = featurize(archs, self.space, self.workload, self.hardware)[:, -1].copy()
        if not self.hardware.has_range:
            return point, np.full(len(point), ANALYTIC_REL_STD)
        _, slow = self.predict_range(archs)
        rel = np.log(np.maximum(slow / point, 1.0)) / RANGE_Z  # the slow end as the 95% bound
        return point, np.maximum(rel, 0.05)

    def bound(self, archs: Sequence[Arch], confidence: float = DEFAULT_CONFIDENCE) -> np.ndarray:
        """The upper bound of each arch's latency at `confidence` (the point prediction at 0.5)."""
        seconds, rel = self.predict(archs)
        return seconds * np.exp(z_of(confidence) * rel)

    def predict_range(self, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """(fast, slow): the analytic prediction at the two ends of the profile's constant ranges."""
        if self.gpu is not None:
            return (self.gpu.seconds(archs, self.hardware.runtime, "fast"),
                    self.gpu.seconds(archs, self.hardware.runtime, "slow"))
        out = {}
        for end in ("fast", "slow"):
            out[end] = np.asarray([roofline_terms(analytic_cost(a, self.workload), self.hardware, end, a.precision)[3]
                                   for a in archs])
        return out["fast"], out["slow"]

    def phases(self, archs: Sequence[Arch], total: Sequence[float] | None = None) -> list[tuple[float, float] | None]:
        """Per arch of a generation workload: (time to first token, seconds per decoded token after
        it), the point prediction split by the analytic roofline's share of the first call on this
        hardware (the predictors learn totals); None for a workload that does not decode. `total`:
        the point predictions, when the caller has them already."""
        w = self.workload
        if not w.generation:
            return [None] * len(archs)
        after = w.gen_tokens - (1 if archs and archs[0].kind == "encoder-decoder" else 0)
        total = self.predict(archs)[0] if total is None else total
        timed = {}
        if self.gpu is not None:  # the kernel model times each invocation itself (archs its tables cover)
            from latency.gpu import COVERED
            covered = [a for a in archs if a.precision in COVERED]
            timed = dict(zip(covered, self.gpu.invocation_seconds(covered, self.hardware.runtime)))

        def roof(a: Arch, gen: int) -> float:
            return roofline_terms(analytic_cost(a, Workload(w.batch, w.seq_len, gen)), self.hardware, "point",
                                  a.precision)[3]
        out: list[tuple[float, float] | None] = []
        for a, t in zip(archs, total):
            if a in timed:
                share = float(timed[a][0] / timed[a].sum())
                out.append((float(t) * share, float(t) * (1 - share) / after if after else 0.0))
                continue
            one, two, whole = roof(a, 1), roof(a, 2), roof(a, w.gen_tokens)
            first = one - (two - one) if a.kind == "decoder" else one  # the prompt's call without a step after it
            share = min(1.0, max(0.0, first / whole))
            out.append((float(t) * share, float(t) * (1 - share) / after if after else 0.0))
        return out

    def describe(self) -> str:
        hw = self.hardware
        if self.source == "kernels":
            if hw.runtime == "cuda-graphs":
                lo, pt, hi = (hw.launch(e) * 1e6 for e in ("fast", "point", "slow"))
                run = f"runtime cuda-graphs: kernels back to back, a graph launch of {pt:.3g} us (range {lo:.3g}-{hi:.3g} us) per call"
            else:
                run = (f"runtime eager: each call the longer of its kernels and the host's per-op overhead "
                       f"{hw.op_overhead * 1e6:.3g} us (range {hw.overhead('fast') * 1e6:.3g}-{hw.overhead('slow') * 1e6:.3g} us)")
            return f"kernel model from the {self.gpu.model.describe()} ({run}; {hw.name} not measured here)"
        if self.source == "analytic":
            if self.hardware.has_range:
                lo, hi = self.hardware.overhead("fast") * 1e6, self.hardware.overhead("slow") * 1e6
                return (f"analytic roofline (no measurements of {self.hardware.name}: per-op overhead "
                        f"{self.hardware.op_overhead * 1e6:.3g} us, range {lo:.3g}-{hi:.3g} us)")
            return f"analytic roofline (no measurements of {self.hardware.name})"
        text = f"{self.source} predictor"
        if self.calibration:
            text += f", rescaled to this machine's speed now (x{self.scale:.2f})"
        return text


def latency_model(hw: Hardware, space: SearchSpace, workload: Workload) -> LatencyModel:
    """A measured predictor for the profile's runtime if there is one, else its GPU's kernel tables,
    else the analytic roofline."""
    path = find_bundle(hw.name, space.name, workload)
    if path is not None:
        from latency.bundle import load_bundle
        bundle = load_bundle(path)
        if bundle.dataset.get("runtime", "eager") == hw.runtime:
            return LatencyModel(hw, space, workload, bundle.source, bundle)
    from latency.kernels import kernel_model
    kernels = kernel_model(hw)
    if kernels is not None:
        from latency.gpu import GpuLatency
        return LatencyModel(hw, space, workload, "kernels", gpu=GpuLatency(kernels, workload))
    if hw.runtime != "eager":
        raise UserError(f"runtime {hw.runtime}: {hw.name} has no kernel tables (configs/gpu_kernels/) or "
                        f"measurements for it; pass --runtime eager (or list eager first in its `runtimes`) "
                        f"for its analytic model")
    return LatencyModel(hw, space, workload, "analytic")


def predictor_status(hw: Hardware, space: SearchSpace, workload: Workload) -> str:
    path = find_bundle(hw.name, space.name, workload)
    if path is None:
        from latency.kernels import kernel_tables
        tables = kernel_tables(hw.name) if hw.kind == "gpu" else None
        return f"kernel model ({tables.describe()})" if tables is not None else "analytic only"
    from latency.bundle import load_bundle
    b = load_bundle(path)
    m = b.metrics or {}
    within = f", {m['within_10']:.0%} within ±10%" if "within_10" in m else ""
    where = "yours" if str(path).startswith(str(_store())) else "shipped"
    return f"{b.source} ({where}, {b.dataset.get('rows', '?')} rows{within})"


def _store():
    from latency.store import store_root
    return store_root()


def space_for(arch: Arch) -> SearchSpace:
    for name in builtin_spaces():
        space = load_space(name)
        if space.contains(arch):
            return space
    raise UserError(f"arch {arch.id} is in none of the shipped spaces; pass --space NAME|PATH")


# ---- today's wall clock ------------------------------------------------------------------------------

def device_present(model: LatencyModel) -> bool:
    """Whether this machine is the device the model's dataset was measured on (the same CPU model
    name, or the same GPU). A lookalike CPU (the same name, another generation: see `other_cpu`)
    counts: timing the reference arch on it still puts predictions on its scale, to first order."""
    if model.bundle is None:
        return False
    from latency.runner import cpu_model
    ds = model.bundle.dataset
    if model.hardware.device == "cuda":
        import torch
        return torch.cuda.is_available() and ds.get("device_name") == torch.cuda.get_device_name()
    return ds.get("cpu_model") == cpu_model()


def other_cpu(model: LatencyModel) -> str:
    """When this machine's CPU has the model name the dataset was measured on but another family or
    model number than the dataset's rows record (or, for a dataset that names none, than the
    profile records): how it differs ('' otherwise). A predictor fitted on this very machine, in
    the user's store, is never warned about."""
    from latency.runner import cpu_identity, cpu_label, cpu_model
    hardware = model.hardware
    if hardware.device != "cpu" or model.bundle is None:
        return ""
    ds = model.bundle.dataset
    if ds.get("cpu_model") != cpu_model():
        return ""  # plainly another machine: searching for a device one is not on is the usual case
    measured = ds.get("device_name") or ""
    if measured != ds.get("cpu_model"):  # the dataset names its CPU's generation: compare with it
        here = cpu_label()
        return "" if measured == here else (f"this machine's CPU is {here}, not the {measured} that {hardware.name}'s "
                                            f"latency data was measured on")
    if not hardware.cpu:
        return ""
    here = cpu_identity()
    diff = {k: (v, here.get(k)) for k, v in hardware.cpu.items() if k in here and here[k] != v}
    if not diff:
        return ""
    return (f"this machine's CPU is {', '.join(f'{k} {here[k]}' for k in diff)}, not the {', '.join(f'{k} {v}' for k, (v, _) in diff.items())} "
            f"that {hardware.name} was measured on")


def calibrate(model: LatencyModel, rounds: int = 7, bursts: int = 3, gap_s: float = 0.5) -> dict:
    """Times the dataset's reference arch on this machine now and rescales the model's predictions
    to today's wall clock. Only on the measured device itself, whose dataset holds the reference's
    median; returns what it found ({} when it could not calibrate).

    The reference is timed in `bursts` groups of `rounds`, `gap_s` apart, and the median of the
    groups' medians is taken: on a shared host a single group can land in a second-long slowdown
    (seen: one group 1.9x slower than the groups around it, with a tight spread of its own)."""
    if not device_present(model) or not model.bundle.dataset.get("ref_s"):
        return {}
    from latency.profile import reference_arch, time_group
    from latency.protocol import TimingProtocol
    ref = reference_arch(model.space)
    if ref.id != model.bundle.dataset.get("ref_id"):
        return {}
    import statistics
    import time
    medians, spreads = [], []
    for b in range(bursts):
        if b:
            time.sleep(gap_s)
        timings, _ = time_group([ref], model.workload, model.hardware.device,
                                TimingProtocol(warmup=2, rounds=rounds, max_spread=0.05, extra_rounds=4),
                                threads=model.hardware.threads)
        medians.append(timings[0].median)
        spreads.append(timings[0].spread)
    now, then = statistics.median(medians), float(model.bundle.dataset["ref_s"])
    model.scale = now / then
    model.calibration = {"reference_now_s": now, "reference_dataset_s": then, "scale": model.scale,
                         "spread": statistics.median(spreads), "bursts": medians}
    return model.calibration


def far_from_dataset(scale: float) -> bool:
    return not 0.8 <= scale <= 1.25


__all__ = ["DEFAULT_CONFIDENCE", "LatencyModel", "calibrate", "device_present", "far_from_dataset", "latency_model",
           "other_cpu",
           "predictor_status", "space_for", "z_of"]
