"""Where and in what precision a model runs: `--device auto|cpu|cuda|cuda:N|mps` and
`--precision fp32|bf16|fp16`, and the torch.distributed process group of a `torchrun` launch.

Precision means autocast for the forward passes over fp32 master weights (and, for fp16, a
gradient scaler). The default is bf16 on a CUDA device that supports it and fp32 everywhere else:
on this project's CPU (a 2-vCPU Xeon) bf16 autocast trains about 3x *slower* than fp32
(docs/benchmarks.md), so it is never the CPU default.
"""
from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager

import torch

from space.arch import EVAL_PRECISIONS
from space.errors import UserError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """`auto`: CUDA when present, else the CPU. `cuda`, `cuda:N`, `mps` and `cpu` must exist here."""
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise UserError("--device mps: no Apple GPU (MPS) here; use --device cpu or auto")
        return torch.device("mps")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {spec}: this machine has no CUDA device (torch {torch.__version__} sees none); "
                            f"use --device cpu or auto")
        index = spec.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise UserError(f"--device {spec}: there are {torch.cuda.device_count()} CUDA devices here "
                            f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
        return torch.device("cuda", int(index) if index else torch.cuda.current_device())
    raise UserError(f"--device {spec!r}: choose auto, cpu, cuda, cuda:N or mps")


def default_precision(device: torch.device) -> str:
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def resolve_precision(spec: str | None, device: torch.device) -> str:
    if spec is None or spec == "auto":
        return default_precision(device)
    if spec not in EVAL_PRECISIONS:
        raise UserError(f"--precision {spec!r}: choose one of {', '.join(EVAL_PRECISIONS)}")
    if spec == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"--precision bf16: {torch.cuda.get_device_name(device)} does not support bfloat16; use fp16")
    return spec


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


# Native half-precision matmul on x86 CPUs; without them autocast runs bf16/fp16 through conversions
_NATIVE = {"bf16": {"avx512_bf16", "amx_bf16"}, "fp16": {"avx512_fp16", "amx_fp16"}}


def slow_precision_note(device: torch.device, precision: str, flags: set[str] | None = None) -> str | None:
    """A warning when `precision` is emulated on this CPU, where it runs far slower than fp32
    (measured: bf16 autocast trains 28x slower than fp32 on an AVX2-only EPYC, docs/benchmarks.md)."""
    if device.type != "cpu" or precision not in _NATIVE:
        return None
    flags = cpu_flags() if flags is None else flags
    if not flags or flags & _NATIVE[precision]:
        return None  # not Linux, or native support: nothing to say
    return (f"this CPU has no native {precision} instructions ({' or '.join(sorted(_NATIVE[precision]))}); "
            f"{precision} autocast is emulated and runs many times slower than fp32 (measured 28x on an AVX2 "
            f"EPYC): --precision fp32 is faster here")


def autocast(device: torch.device, precision: str) -> ContextManager[Any]:
    """Autocast of the forward pass to `precision` (nothing for fp32)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def grad_scaler(device: torch.device, precision: str) -> "torch.amp.GradScaler":
    """A gradient scaler: active for fp16 only (bf16 has fp32's range)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def to_device(x: Any, device: torch.device) -> Any:
    """A batch input (a tensor, or the dict a translation batch carries) on `device`."""
    if isinstance(x, dict):
        return {k: v.to(device, non_blocking=True) for k, v in x.items()}
    return x.to(device, non_blocking=True)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def memory_available(device: torch.device) -> int | None:
    """Bytes a training may use on `device`: the GPU's free memory, or the RAM available."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


# ---- torch.distributed (a `torchrun` launch) -------------------------------------------------------

@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device_spec: str | None) -> tuple[Dist, torch.device]:
    """Joins the process group when `torchrun` started this process (gloo on the CPU, NCCL on
    CUDA; each rank takes the GPU of its local rank); otherwise a world of one."""
    import torch.distributed as dist
    if not launched_by_torchrun():
        return Dist(), resolve_device(device_spec)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    spec = (device_spec or "auto").lower()
    if spec in ("auto", "cuda") and torch.cuda.is_available():
        device = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = resolve_device(spec)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local), device
