"""The hardware registry: spec sheets in configs/hardware/*.yaml (or any YAML path).

A profile gives what a roofline model needs (peak FLOP/s per dtype, memory bandwidth, a per-op
overhead) and where each number comes from. Whether a profile is *measured* (a latency dataset and
a fitted predictor exist for it), *calibrated* (a few measurements adjust the analytic model) or
*analytic only* is decided by what the store holds, not by the YAML.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from space.files import check_keys, named_config, read_yaml
from space.errors import UserError
from space.options import check_int

KINDS = ("cpu", "gpu")
_KEYS = ("name", "description", "kind", "device", "dtype", "precisions", "threads", "peak_flops", "memory_bandwidth",
         "op_overhead", "efficiency", "sources", "measured", "cpu", "runtimes", "graph_launch")
RUNTIMES = ("eager", "cuda-graphs")  # how a model runs: op by op from Python, or replayed from a captured CUDA graph
ENDS = ("fast", "point", "slow")  # the ends of a profile's constants: best case, estimate, worst case


class HardwareError(UserError):
    pass


@dataclass(frozen=True)
class Hardware:
    """A device's spec sheet for the analytic roofline. Constants that are estimates, not
    measurements, carry a (low, high) range: the per-op overhead of eager PyTorch on the device's
    host, and the fractions of peak FLOP/s and bandwidth that kernels reach (`efficiency`)."""

    name: str
    description: str
    kind: str  # cpu | gpu
    device: str  # the torch device it profiles on: cpu | cuda
    peak_flops: dict[str, float]  # FLOP/s per dtype, dense
    memory_bandwidth: float  # bytes/s
    op_overhead: float  # seconds per dispatched tensor op (launch + framework dispatch)
    dtype: str = "fp32"
    threads: int | None = None
    sources: tuple[str, ...] = ()
    measured: dict[str, Any] = field(default_factory=dict)  # how this profile's own numbers were measured
    op_overhead_range: tuple[float, float] | None = None  # (low, high) seconds, when op_overhead is an estimate
    efficiency: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # flops|bandwidth -> (low, point, high)
    precisions: tuple[str, ...] = ("fp32",)  # the numeric precisions models run at on this device (space/arch.py)
    cpu: dict[str, Any] = field(default_factory=dict)  # the measured CPU's vendor, family, model (/proc/cpuinfo)
    runtimes: tuple[str, ...] = ("eager",)  # the runtimes a budget can be for; the first is the default
    runtime: str = "eager"  # the one this profile's predictions are for (`with_runtime`)
    graph_launch: tuple[float, float, float] | None = None  # (low, point, high) s per CUDA graph replay

    def with_runtime(self, runtime: str | None) -> "Hardware":
        """This profile with its predictions for `runtime` (None: the profile's default)."""
        if runtime is None or runtime == self.runtime:
            return self
        if runtime not in self.runtimes:
            raise HardwareError(f"--runtime {runtime}: {self.name} runs {', '.join(self.runtimes)}"
                                + ("" if self.kind == "gpu" else " (CUDA graphs are for GPUs)"))
        from dataclasses import replace
        return replace(self, runtime=runtime)

    def launch(self, end: str = "point") -> float:
        """Seconds per CUDA graph replay (the cuda-graphs runtime's fixed cost per invocation)."""
        if self.graph_launch is None:
            raise HardwareError(f"{self.name} has no graph_launch constant (needed for the cuda-graphs runtime)")
        low, point, high = self.graph_launch
        return {"fast": low, "point": point, "slow": high}[end]

    @property
    def peak(self) -> float:
        return self.peak_flops[self.dtype]

    def eff(self, what: str, end: str = "point") -> float:
        """The fraction of peak (`flops`) or bandwidth (`bandwidth`) kernels reach (1.0 if not given)."""
        low, point, high = self.efficiency.get(what, (1.0, 1.0, 1.0))
        return {"fast": high, "point": point, "slow": low}[end]

    def overhead(self, end: str = "point") -> float:
        if self.op_overhead_range is None or end == "point":
            return self.op_overhead
        return self.op_overhead_range[0] if end == "fast" else self.op_overhead_range[1]

    @property
    def has_range(self) -> bool:
        return self.op_overhead_range is not None or bool(self.efficiency)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sources"] = list(self.sources)
        if self.op_overhead_range is not None:
            d["op_overhead"] = {"low": self.op_overhead_range[0], "value": self.op_overhead,
                                "high": self.op_overhead_range[1]}
        d.pop("op_overhead_range")
        d["precisions"] = list(self.precisions)
        if not self.cpu:
            d.pop("cpu")
        d["runtimes"] = list(self.runtimes)
        d.pop("runtime")
        if self.graph_launch is None:
            d.pop("graph_launch")
        else:
            d["graph_launch"] = dict(zip(("low", "value", "high"), self.graph_launch))
        if self.efficiency:
            d["efficiency"] = {k: {"low": lo, "value": pt, "high": hi} for k, (lo, pt, hi) in self.efficiency.items()}
        else:
            d.pop("efficiency")
        return d


def _positive(value: Any, where: str) -> float:
    if isinstance(value, str):  # YAML 1.1 reads 19.5e12 (no sign in the exponent) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise HardwareError(f"{where}={value!r} must be a positive number")
    return float(value)


def hardware_from_dict(d: Any, where: str) -> Hardware:
    check_keys(d, where, _KEYS, ("name", "kind", "device", "peak_flops", "memory_bandwidth", "op_overhead"),
               error=HardwareError, what="a mapping of hardware fields")
    if d["kind"] not in KINDS:
        raise HardwareError(f"{where}.kind={d['kind']!r}; allowed: {', '.join(KINDS)}")
    if d["device"] not in ("cpu", "cuda"):
        raise HardwareError(f"{where}.device={d['device']!r}; allowed: cpu, cuda")
    peaks = d["peak_flops"]
    if not isinstance(peaks, dict) or not peaks:
        raise HardwareError(f"{where}.peak_flops: expected a mapping dtype -> FLOP/s, e.g. {{fp32: 19.5e12}}")
    peaks = {str(k): _positive(v, f"{where}.peak_flops.{k}") for k, v in peaks.items()}
    dtype = d.get("dtype", "fp32")
    if dtype not in peaks:
        raise HardwareError(f"{where}.dtype={dtype!r} has no peak_flops entry; given: {', '.join(peaks)}")
    threads = d.get("threads")
    if threads is not None:
        check_int(threads, f"{where}.threads", 1, HardwareError)
    overhead, overhead_range = _ranged(d["op_overhead"], f"{where}.op_overhead")
    from space.arch import PRECISIONS
    precisions = d.get("precisions", [dtype if dtype in PRECISIONS else "fp32"])
    if not isinstance(precisions, list) or not precisions or any(p not in PRECISIONS for p in precisions):
        raise HardwareError(f"{where}.precisions={precisions!r}: a list from {', '.join(PRECISIONS)}")
    efficiency = {}
    for what, value in check_keys(d.get("efficiency") or {}, f"{where}.efficiency", ("flops", "bandwidth"),
                                  error=HardwareError).items():
        point, (low, high) = _ranged(value, f"{where}.efficiency.{what}")
        if not 0 < low <= point <= high <= 1:
            raise HardwareError(f"{where}.efficiency.{what}: need 0 < low <= value <= high <= 1 (fractions of peak)")
        efficiency[what] = (low, point, high)
    cpu = check_keys(d.get("cpu") or {}, f"{where}.cpu", ("vendor", "family", "model"), error=HardwareError)
    for key in ("family", "model"):
        if key in cpu and (isinstance(cpu[key], bool) or not isinstance(cpu[key], int)):
            raise HardwareError(f"{where}.cpu.{key}={cpu[key]!r} must be an integer (as /proc/cpuinfo gives it)")
    runtimes = d.get("runtimes", ["eager"])
    if (not isinstance(runtimes, list) or not runtimes or any(r not in RUNTIMES for r in runtimes)
            or len(set(runtimes)) != len(runtimes)):
        raise HardwareError(f"{where}.runtimes={runtimes!r}: a list from {', '.join(RUNTIMES)}")
    if "cuda-graphs" in runtimes and d["device"] != "cuda":
        raise HardwareError(f"{where}.runtimes: cuda-graphs needs device: cuda")
    graph_launch = None
    if "graph_launch" in d:
        point, (low, high) = _ranged(d["graph_launch"], f"{where}.graph_launch")
        if high > 1e-3:
            raise HardwareError(f"{where}.graph_launch: {high:g} s per CUDA graph replay is implausible; "
                                "write seconds (6 us = 6.0e-6)")
        graph_launch = (low, point, high)
    elif "cuda-graphs" in runtimes:
        raise HardwareError(f"{where}: the cuda-graphs runtime needs graph_launch (seconds per CUDA graph replay)")
    return Hardware(name=str(d["name"]), description=str(d.get("description", "")), kind=d["kind"],
                    device=d["device"], peak_flops=peaks,
                    memory_bandwidth=_positive(d["memory_bandwidth"], f"{where}.memory_bandwidth"),
                    op_overhead=overhead, dtype=dtype, threads=threads,
                    sources=tuple(str(s) for s in d.get("sources", ())), measured=dict(d.get("measured") or {}),
                    op_overhead_range=overhead_range if isinstance(d["op_overhead"], dict) else None,
                    efficiency=efficiency, precisions=tuple(precisions), cpu=dict(cpu),
                    runtimes=tuple(runtimes), runtime=runtimes[0], graph_launch=graph_launch)


def _ranged(value: Any, where: str) -> tuple[float, tuple[float, float]]:
    """A number (no range), or {low, value, high}: (value, (low, high))."""
    if isinstance(value, dict):
        check_keys(value, where, ("low", "value", "high"), ("low", "value", "high"), error=HardwareError)
        low, point, high = (_positive(value[k], f"{where}.{k}") for k in ("low", "value", "high"))
        if not low <= point <= high:
            raise HardwareError(f"{where}: need low <= value <= high, got {low:g}, {point:g}, {high:g}")
        return point, (low, high)
    point = _positive(value, where)
    return point, (point, point)


def hardware_dir() -> Path:
    from configs import config_dir
    return config_dir() / "hardware"


def builtin_hardware() -> list[str]:
    return sorted(p.stem for p in hardware_dir().glob("*.yaml"))


def load_hardware(name_or_path: str | Path) -> Hardware:
    path = named_config(name_or_path, hardware_dir(), "hardware", HardwareError,
                        "; see `nas hardware show a100` for the fields")
    return hardware_from_dict(read_yaml(path, HardwareError), path.name)
