"""GPU latency from measured kernel timings: each kernel an arch launches (space.kernels) looked up
in its GPU's tables (latency.kernels), summed per invocation, and put together by the runtime the
budget is for (the profile's `runtime`):

- `eager` (PyTorch as `nas export` writes it): the host dispatches every tensor op (the profile's
  per-op overhead, a range) while the GPU runs the kernels already queued, so an invocation takes
  the longer of its host dispatch and its kernels. At batch 1 a small model is the host's.
- `cuda-graphs` (decoding captured in a CUDA graph, or an engine): the kernels back to back plus one
  graph launch per invocation (the prefill, each decode step). The tables were timed as graph
  replays, so a kernel's time holds its launch inside a graph.

The ends of the range: the kernels at +-KERNEL_ERROR (bench/gpu_kernels.py: 84-97% of held-out
table points within +-10%) and the runtime's constant at the ends of its range.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from latency.hardware import RUNTIMES, Hardware
from latency.kernels import KernelModel
from space import Arch, Workload
from space.cost import activation_bytes
from space.kernels import kernel_invocations

KERNEL_ERROR = 0.10
COVERED = ("fp32", "bf16", "fp16")  # the precisions the kernel tables (and their fp32 rule) time
_FACTOR = {"fast": 1 - KERNEL_ERROR, "point": 1.0, "slow": 1 + KERNEL_ERROR}


class GpuLatency:
    """Seconds per invocation of a workload on one GPU, from its kernel tables."""

    def __init__(self, model: KernelModel, workload: Workload):
        self.model, self.workload, self.hardware = model, workload, model.hardware
        self._kernels: dict[Arch, np.ndarray] = {}  # per arch: kernel seconds per invocation
        self._ops: dict[Arch, np.ndarray] = {}

    def kernel_seconds(self, archs: Sequence[Arch]) -> list[np.ndarray]:
        """Per arch: its kernels' seconds summed per invocation (the tables' point)."""
        todo = [a for a in dict.fromkeys(archs) if a not in self._kernels]
        if todo:
            self._evaluate(todo)
        return [self._kernels[a] for a in archs]

    def invocation_seconds(self, archs: Sequence[Arch], runtime: str, end: str = "point") -> list[np.ndarray]:
        """Per arch: seconds of each invocation under `runtime`, at the `end` of the ranges. An arch at
        a precision the tables do not cover (int8: PyTorch's dynamic quantization runs on CPUs only)
        gets the analytic roofline's total, as one figure."""
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime {runtime!r}: one of {', '.join(RUNTIMES)}")
        hw, out = self.hardware, []
        covered = [a for a in archs if a.precision in COVERED]
        seconds = dict(zip(covered, self.kernel_seconds(covered)))
        for a in archs:
            if a not in seconds:
                out.append(np.asarray([self._roofline(a, runtime, end)]))
                continue
            k = seconds[a]
            k = k * _FACTOR[end]
            if runtime == "cuda-graphs":
                out.append(k + hw.launch(end))
            else:
                out.append(np.maximum(k, self._ops[a] * hw.overhead(end)))
        return out

    def _roofline(self, arch: Arch, runtime: str, end: str) -> float:
        return roofline_seconds(arch, self.workload, self.hardware, runtime, end)

    def seconds(self, archs: Sequence[Arch], runtime: str, end: str = "point") -> np.ndarray:
        return np.asarray([float(s.sum()) for s in self.invocation_seconds(archs, runtime, end)])

    def _evaluate(self, archs: list[Arch]) -> None:
        """All kernels of all `archs` at once: one table lookup per kind and dtype."""
        rows: dict[tuple, list] = {}  # (kind, dtype, head_dim) -> [(arch index, invocation, *record)]
        counts = []
        for i, arch in enumerate(archs):
            inv = kernel_invocations(arch, self.workload)
            counts.append(len(inv))
            self._ops[arch] = np.asarray([ops for _, ops in inv], dtype=float)
            for j, (kernels, _) in enumerate(inv):
                for k in kernels:
                    rows.setdefault((k[0], arch.precision, arch.head_dim), []).append((i, j, *k[1:]))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(int)  # arch i's calls: offsets[i]:offsets[i+1]
        flat = np.zeros(offsets[-1])
        for (kind, dtype, head_dim), recs in rows.items():
            r = np.asarray(recs, dtype=float)
            np.add.at(flat, offsets[r[:, 0].astype(int)] + r[:, 1].astype(int),
                      self._lookup(kind, dtype, head_dim, r[:, 2:]))
        for i, arch in enumerate(archs):
            self._kernels[arch] = flat[offsets[i]:offsets[i + 1]]

    def _lookup(self, kind: str, dtype: str, head_dim: int, r: np.ndarray) -> np.ndarray:
        m = self.model
        tdtype = "bf16" if dtype == "fp16" else dtype
        if kind == "gemm":
            shapes, back = np.unique(r[:, :3], axis=0, return_inverse=True)
            return np.asarray(m.gemm(shapes[:, 0], shapes[:, 1], shapes[:, 2], tdtype)).reshape(-1)[back.reshape(-1)]
        if kind == "ew":
            return np.asarray(m.elementwise(r[:, 0] * activation_bytes(dtype)), dtype=float).reshape(-1)
        if kind == "roof":
            peak = self.hardware.peak_flops.get(dtype, self.hardware.peak) * m.utilisation
            bw = self.hardware.memory_bandwidth * m.bw_scale
            return m.tables.floor_s + np.maximum(r[:, 0] / peak, r[:, 1] * activation_bytes(dtype) / bw)
        # attn: queries, keys, heads, kv_heads, causal, groups (x batch)
        q, keys, heads, kv, causal, groups = (r[:, i] for i in range(6))
        out = np.zeros(len(r))
        one = q == 1
        if one.any():  # one query per sequence: the decode kernel over its keys
            out[one] = m.decode(groups[one], keys[one], heads[one], kv[one], head_dim, tdtype)
        many = ~one
        for c in (0, 1):
            sel = many & (causal == c)
            if sel.any():  # a prompt's; queries != keys: the same pairs as a batch of square prompts
                ratio = keys[sel] / q[sel]
                out[sel] = m.prefill(groups[sel] * ratio, q[sel], heads[sel], kv[sel], head_dim, tdtype,
                                     causal=bool(c))
        return out


def roofline_seconds(arch: Arch, workload: Workload, hw: Hardware, runtime: str, end: str = "point") -> float:
    """The analytic roofline's total under `runtime`: eager as the analytic model has it (every op
    pays the per-op overhead); cuda-graphs without that overhead, one graph launch per call."""
    from latency.features import roofline_terms
    from space import analytic_cost
    _, _, overhead, total = roofline_terms(analytic_cost(arch, workload), hw, end, arch.precision)
    if runtime != "cuda-graphs":
        return total
    return total - overhead + len(kernel_invocations(arch, workload)) * hw.launch(end)


__all__ = ["GpuLatency", "KERNEL_ERROR", "RUNTIMES", "roofline_seconds"]
