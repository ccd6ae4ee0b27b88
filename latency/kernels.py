"""Kernel-level GPU latency from measured tables: NVIDIA's per-kernel timings (aiconfigurator-core,
extracted into configs/gpu_kernels/GPU/ by scripts/extract_gpu_kernels.py), looked up and
interpolated, with stated rules where the tables do not reach.

    tables = kernel_tables("a100")             # None: no tables for this GPU (it keeps the analytic model)
    model = KernelModel(tables, load_hardware("a100"))
    model.gemm(1, 2304, 768)                   # seconds: x (1, 768) @ W (768, 2304), bf16
    model.prefill(1, 512, 12, 12, 64)          # causal attention over a 512-token prompt
    model.decode(1, 640, 12, 12, 64)           # one new token attending to 640 cached keys
    model.elementwise(2 * 512 * 768 * 2)       # a kernel that moves this many bytes

Every time is one kernel (or the op's few kernels, as the framework ran them) launched from a CUDA
graph: the tables were timed as graph replays, so they hold no host-side dispatch. An eager runtime
adds its per-op overhead on top; that is the caller's business (latency/model.py, stage 2).

How a table is read (`Grid`):
- Interpolation: multilinear in log2(time) over log2 of each coordinate, on the table's own grid;
  a grid point returns its table value exactly (the measured one, or its monotone fit below).
- Holes (a shape the table skipped, e.g. 12 heads with 8 KV heads): filled at load time along each
  axis that brackets them, log-log linearly between the nearest measured neighbours (the mean over
  such axes, weighted by closeness); corners still unknown are left out and the rest reweighted.
- Beyond the grid: log-log linear from the edge with the edge interval's slope clamped to [0, p],
  p the power the work grows with along that axis (1 for m, n, k, batch, heads, KV heads,
  context; 2 for a prompt's length): time never falls as work grows and never grows faster than
  the work; where the slope is unknown, the slow end (p above, 0 below). Where hwnas goes beyond
  a table (a batch below 1 from the head-size rule; decode with more than vLLM's 8 KV heads, as
  MHA with 12 heads does), the rule is built into the table at load time as a virtual row
  (`EXTEND`: a batch of 1/16, 16x the KV heads), so the monotone fit covers it. Elsewhere (a
  GEMM with m > 8,192, n > 65,536, k > 16,384: far beyond hwnas) it is applied at the query, and
  above the grid with slope p itself, which keeps the GEMM monotone in the other axes.
- Monotone tables: made non-decreasing at load time along the axes in `MONOTONE` (GEMM in m, n
  and k; attention in batch and length) by isotonic regression of log time, one axis after
  another. Neighbouring shapes cross in the raw tables, mostly by the library's kernel choice (on
  the A100 a 1x32x256 GEMM is listed at 4.3 us, a 1x256x256 one at 2.6 us; shapes measured twice
  differ by a median 0.6%), and a search must not see a bigger layer as faster. A grid point then
  returns the monotone fit; bench/gpu_kernels.py reports what that costs on held-out points.

Corrections where the tables do not reach:
- Head sizes without a table: the nearest table's head size d0, at a batch scaled to the same
  work. Attention's FLOPs and bytes are both proportional to batch x head size, and flash kernels
  parallelise over batch and heads alike, so scaling the batch keeps the work and the GQA
  structure. A batch below 1 follows the below-the-grid rule, built into the table at load time
  as a virtual batch of 1/16 that the monotone fit then covers too. The factor is d/d0, except for a
  prefill with narrower heads than its table: (d/d0)^0.6, because flash prefill of narrow heads
  reaches a lower share of peak (fitted on H100 and H200, 64 predicted from 128; the A100's
  tables hold 128 alone, so there the rule is Hopper's, unchecked on Ampere). bench/gpu_kernels.py
  reports both checks.
- Bidirectional (non-causal) prefill does twice a causal prefill's work: the causal time at twice
  the batch.
- fp16: the bf16 tables (same tensor-core peak and bytes in every profile). fp32 (PyTorch's default,
  TF32 off): the larger of twice the bf16 time (twice the bytes) and the FLOPs at the profile's fp32
  peak times the best utilisation the bf16 GEMM table reaches on that GPU.
- Element-wise ops: the GPU's smallest measured kernel (its launch floor in a graph) plus the bytes
  at the profile's bandwidth times the package's empirical scaling factor.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from space.errors import UserError

GEMM_AXES = ("m", "n", "k")
PREFILL_AXES = ("batch", "seq", "heads", "kv_heads")
DECODE_AXES = ("batch", "context", "heads", "kv_heads")
# the axes each table is made monotone along (module docstring); not heads and KV heads: the
# attention kernel's path depends on the head layout, and forcing it costs 9 points of the A100
# decode table's held-out share within +-10%
MONOTONE = {"gemm": GEMM_AXES, "prefill": ("batch", "seq"), "decode": ("batch", "context")}
EXTEND_OCTAVES = 4  # virtual rows: a batch of 1/16 (head sizes down to a quarter of the table's), 16x the KV heads
EXTEND = {"prefill": {"below": ("batch",)}, "decode": {"below": ("batch",), "above": ("kv_heads",)}}
_POWER = {"m": 1, "n": 1, "k": 1, "batch": 1, "seq": 2, "heads": 1, "kv_heads": 1, "context": 1}
TABLE_DTYPES = ("bf16", "fp16")  # read straight from the bf16 tables
WIDER_DTYPES = ("fp32",)  # derived from them (module docstring)
DEFAULT_BW_SCALE = 0.8  # used when a table set's source.json lacks the package's figure
NARROW_PREFILL_EXPONENT = 0.6  # the head-size rule's exponent for prefill below the table's head size


class KernelTableError(UserError):
    pass


@dataclass(frozen=True)
class Grid:
    """One measured table on its rectilinear grid: log2 coordinates per axis, log2(seconds) per
    cell (NaN: unmeasured and not fillable). Callable on arrays: grid(m, n, k) -> seconds."""

    axes: tuple[str, ...]
    coords: tuple[np.ndarray, ...]  # log2 of each axis's sorted grid values
    values: np.ndarray  # log2(seconds), shape = lengths of coords

    @classmethod
    def from_rows(cls, axes: tuple[str, ...], points: np.ndarray, seconds: np.ndarray,
                  monotone: tuple[str, ...] = (), below: tuple[str, ...] = (), above: tuple[str, ...] = ()) -> "Grid":
        """points: (N, D) coordinates of measured rows; seconds: (N,); monotone: the axes to make
        time non-decreasing along; below, above: the axes to give a virtual row 16x beyond their
        first or last, by the edge slope rule, before that fit (module docstring)."""
        grids = [np.unique(points[:, i]) for i in range(len(axes))]
        values = np.full(tuple(len(g) for g in grids), np.nan)
        index = tuple(np.searchsorted(g, points[:, i]) for i, g in enumerate(grids))
        values[index] = np.log2(seconds)
        coords = tuple(np.log2(g.astype(float)) for g in grids)
        values = _fill_holes(values, coords)
        for axis, up in [(a, False) for a in below] + [(a, True) for a in above]:
            i, p = axes.index(axis), _POWER[axis]
            c = coords[i]
            edge, inner = (-1, -2) if up else (0, 1)
            v_edge, v_inner = np.take(values, [edge], i), np.take(values, [inner], i)
            slope = np.clip((v_edge - v_inner) / (c[edge] - c[inner]), 0, p)
            slope = np.where(np.isnan(slope), p if up else 0.0, slope)  # unknown: the slow end
            step = EXTEND_OCTAVES if up else -EXTEND_OCTAVES
            row, at = v_edge + step * slope, c[edge] + step
            values = np.concatenate([values, row] if up else [row, values], axis=i)
            coords = coords[:i] + (np.concatenate([c, [at]] if up else [[at], c]),) + coords[i + 1:]
        for axis in monotone:
            values = np.apply_along_axis(_isotonic, axes.index(axis), values)
        return cls(axes, coords, values)

    def __call__(self, *query: Any) -> np.ndarray | float:
        q = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in query))
        shape = q[0].shape
        q = np.stack([np.log2(x.ravel()) for x in q], axis=1)  # (P, D)
        out = 2.0 ** self.log_time(q)
        return out.reshape(shape) if shape else float(out[0])

    def log_time(self, q: np.ndarray) -> np.ndarray:
        """log2(seconds) at log2 coordinates q (P, D), extrapolating beyond the grid (module docstring)."""
        lo = np.array([c[0] for c in self.coords])
        hi = np.array([c[-1] for c in self.coords])
        inside = np.clip(q, lo, hi)
        base = self._interpolate(inside)
        out = base.copy()
        for i, c in enumerate(self.coords):
            power = _POWER[self.axes[i]]
            above, below = q[:, i] > hi[i], q[:, i] < lo[i]
            out[above] += power * (q[above, i] - hi[i])  # above: as the work grows
            if below.any() and len(c) > 1:  # below: the first interval's slope, clamped to [0, power]
                near = inside[below].copy()
                near[:, i] = c[1]
                slope = (self._interpolate(near) - base[below]) / (c[1] - c[0])
                slope = np.where(np.isnan(slope), 0.0, np.clip(slope, 0, power))
                out[below] += slope * (q[below, i] - c[0])
        return out

    def _interpolate(self, q: np.ndarray) -> np.ndarray:
        """Multilinear in log space inside the grid; unknown corners are left out and the others reweighted."""
        lower, frac = [], []
        for i, c in enumerate(self.coords):
            if len(c) == 1:
                lower.append(np.zeros(len(q), dtype=int))
                frac.append(np.zeros(len(q)))
                continue
            j = np.clip(np.searchsorted(c, q[:, i], side="right") - 1, 0, len(c) - 2)
            lower.append(j)
            frac.append((q[:, i] - c[j]) / (c[j + 1] - c[j]))
        total, weight = np.zeros(len(q)), np.zeros(len(q))
        for corner in np.ndindex(*(2,) * len(self.coords)):
            w = np.ones(len(q))
            index = []
            for i, up in enumerate(corner):
                if len(self.coords[i]) == 1:
                    if up:
                        w = w * 0
                    index.append(lower[i])
                    continue
                w = w * (frac[i] if up else 1 - frac[i])
                index.append(lower[i] + up)
            v = self.values[tuple(index)]
            known = ~np.isnan(v) & (w > 0)
            total[known] += w[known] * v[known]
            weight[known] += w[known]
        out = np.full(len(q), np.nan)
        ok = weight > 1e-9
        out[ok] = total[ok] / weight[ok]
        if (~ok).any():
            out[~ok] = self._nearest(q[~ok])
        return out

    def _nearest(self, q: np.ndarray) -> np.ndarray:
        """Where every corner is unknown (outside the measured region): the nearest measured cell."""
        cells = np.argwhere(~np.isnan(self.values))
        at = np.stack([self.coords[i][cells[:, i]] for i in range(len(self.coords))], axis=1)
        nearest = np.concatenate([np.argmin(((q[s:s + 256, None, :] - at[None]) ** 2).sum(-1), axis=1)
                                  for s in range(0, len(q), 256)])
        return self.values[tuple(cells[nearest].T)]


def _fill_holes(values: np.ndarray, coords: tuple[np.ndarray, ...]) -> np.ndarray:
    """Each unmeasured cell that some axis brackets: log-log linear between its nearest measured
    neighbours along that axis, averaged over such axes with weights 1 / (log span)."""
    known = ~np.isnan(values)
    if known.all():
        return values
    total, weight = np.zeros(values.shape), np.zeros(values.shape)
    for axis, c in enumerate(coords):
        n = values.shape[axis]
        shape = [1] * values.ndim
        shape[axis] = n
        idx = np.broadcast_to(np.arange(n).reshape(shape), values.shape)
        below = np.maximum.accumulate(np.where(known, idx, -1), axis=axis)
        above = np.flip(np.minimum.accumulate(np.flip(np.where(known, idx, n), axis=axis), axis=axis), axis=axis)
        ok = ~known & (below >= 0) & (above < n)
        if not ok.any():
            continue
        lo, hi = np.clip(below, 0, n - 1), np.clip(above, 0, n - 1)
        v_lo, v_hi = np.take_along_axis(values, lo, axis), np.take_along_axis(values, hi, axis)
        x, x_lo, x_hi = c[idx], c[lo], c[hi]
        span = np.where(ok, x_hi - x_lo, 1.0)
        estimate = v_lo + (v_hi - v_lo) * (x - x_lo) / span
        total[ok] += estimate[ok] / span[ok]
        weight[ok] += 1 / span[ok]
    out = values.copy()
    fill = ~known & (weight > 0)
    out[fill] = total[fill] / weight[fill]
    return out


def _isotonic(y: np.ndarray) -> np.ndarray:
    """Pool adjacent violators: the closest non-decreasing sequence to y in least squares (unknown
    cells are skipped). It preserves order between lines (a line below another stays below), so
    fitting one axis after another keeps the axes already done monotone."""
    known = ~np.isnan(y)
    if known.sum() < 2:
        return y
    means, sizes = [], []
    for v in y[known]:
        means.append(float(v))
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            m, n = means.pop(), sizes.pop()
            means[-1] = (means[-1] * sizes[-1] + m * n) / (sizes[-1] + n)
            sizes[-1] += n
    out = y.copy()
    out[known] = np.repeat(means, sizes)
    return out


@dataclass(frozen=True)
class KernelTables:
    """One GPU's tables: GEMM over (m, n, k), and per head size, prefill over (batch, seq, heads,
    kv_heads) and decode over (batch, context, heads, kv_heads). bf16, seconds."""

    name: str
    source: dict[str, Any]
    gemm: Grid
    prefill: dict[int, Grid]
    decode: dict[int, Grid]
    floor_s: float  # the smallest kernel time in the GEMM table: a near-empty kernel in a CUDA graph
    best_flops: float  # the highest FLOP/s the bf16 GEMM table reaches
    extra: dict[str, Grid] = field(default_factory=dict)  # other tables in the folder (a cross-check's)

    def describe(self) -> str:
        t = self.source.get("tables", {}).get("gemm_bf16.csv", {})
        package = f"{self.source.get('package', '?')} {self.source.get('package_version', '?')}"
        return (f"measured kernel tables of {t.get('device', self.name)} ({t.get('framework', '?')} "
                f"{t.get('version', '?')}, {package})")


def tables_dir() -> Path:
    from configs import config_dir
    return config_dir() / "gpu_kernels"


def _read_csv(path: Path, columns: tuple[str, ...]) -> np.ndarray:
    with path.open() as f:
        header = f.readline().strip().split(",")
    if tuple(header) != columns + ("us",):
        raise KernelTableError(f"{path}: columns {','.join(header)}; expected {','.join(columns + ('us',))} "
                               f"(regenerate with scripts/extract_gpu_kernels.py)")
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


def _head_grids(path: Path, axes: tuple[str, ...], table: str) -> dict[int, Grid]:
    if not path.is_file():
        return {}
    rows = _read_csv(path, axes + ("head_dim",))
    return {int(d): Grid.from_rows(axes, rows[rows[:, -2] == d, :-2], rows[rows[:, -2] == d, -1] * 1e-6,
                                   MONOTONE[table], **EXTEND[table])
            for d in np.unique(rows[:, -2])}


@functools.lru_cache(maxsize=8)
def load_kernel_tables(folder: str | Path) -> KernelTables:
    folder = Path(folder)
    gemm_path = folder / "gemm_bf16.csv"
    if not gemm_path.is_file():
        raise KernelTableError(f"{folder}: no gemm_bf16.csv (regenerate with scripts/extract_gpu_kernels.py)")
    source = json.loads((folder / "source.json").read_text()) if (folder / "source.json").is_file() else {}
    rows = _read_csv(gemm_path, GEMM_AXES)
    extra = {}
    for path in sorted(folder.glob("gemm_bf16.*.csv")):  # another framework's GEMM, for cross-checks
        r = _read_csv(path, GEMM_AXES)
        extra[path.stem.split(".", 1)[1]] = Grid.from_rows(GEMM_AXES, r[:, :3], r[:, 3] * 1e-6, MONOTONE["gemm"])
    return KernelTables(name=folder.name, source=source,
                        gemm=Grid.from_rows(GEMM_AXES, rows[:, :3], rows[:, 3] * 1e-6, MONOTONE["gemm"]),
                        prefill=_head_grids(folder / "prefill_bf16.csv", PREFILL_AXES, "prefill"),
                        decode=_head_grids(folder / "decode_bf16.csv", DECODE_AXES, "decode"),
                        floor_s=float(rows[:, 3].min() * 1e-6),
                        best_flops=float((2 * rows[:, 0] * rows[:, 1] * rows[:, 2] / (rows[:, 3] * 1e-6)).max()),
                        extra=extra)


def kernel_tables(hardware_name: str) -> KernelTables | None:
    """The shipped tables of a GPU profile (configs/gpu_kernels/NAME/), or None when it has none."""
    folder = tables_dir() / hardware_name
    return load_kernel_tables(folder) if (folder / "gemm_bf16.csv").is_file() else None


def kernel_status(hardware) -> str:
    """One line for `nas hardware show` and answers: which latency source a GPU profile's kernels get."""
    if hardware.kind != "gpu":
        return "no kernel tables (not a GPU)"
    tables = kernel_tables(hardware.name)
    if tables is None:
        return f"no kernel tables for {hardware.name}: its kernels keep the analytic roofline"
    return tables.describe()


class KernelModel:
    """Seconds per kernel on one GPU: its tables plus its hardware profile (peaks, bandwidth) for
    the corrections. Arguments may be arrays (one time per element)."""

    def __init__(self, tables: KernelTables, hardware):
        if hardware.kind != "gpu":
            raise KernelTableError(f"{hardware.name} is a {hardware.kind} profile; kernel tables are for GPUs")
        self.tables, self.hardware = tables, hardware
        self.bw_scale = float(tables.source.get("system_figures", {}).get("mem_bw_empirical_scaling_factor",
                                                                           DEFAULT_BW_SCALE))
        self.utilisation = min(1.0, tables.best_flops / hardware.peak_flops["bf16"])  # the fp32 rule's

    def describe(self) -> str:
        return self.tables.describe()

    def gemm(self, m, n, k, dtype: str = "bf16"):
        """x (m, k) @ W (k, n): m = batch x tokens, k = in features, n = out features."""
        t = self.tables.gemm(m, n, k)
        return self._widen(t, 2.0 * np.asarray(m) * n * k, dtype)

    def prefill(self, batch, seq, heads, kv_heads, head_dim, dtype: str = "bf16", causal: bool = True):
        """Attention of a `seq`-token prompt over itself (no cache before it), per layer."""
        grid, scale = self._head_size(self.tables.prefill, head_dim, "prefill")
        scale = scale ** NARROW_PREFILL_EXPONENT if scale < 1 else scale
        work = 1 if causal else 2
        t = grid(np.asarray(batch, dtype=float) * scale * work, seq, heads, kv_heads)
        flops = 2.0 * work * np.asarray(batch) * heads * np.asarray(seq, dtype=float) ** 2 * head_dim  # QK^T, PV
        return self._widen(t, flops, dtype)

    def decode(self, batch, context, heads, kv_heads, head_dim, dtype: str = "bf16"):
        """One new token per sequence attending to `context` keys (the cache including itself)."""
        grid, scale = self._head_size(self.tables.decode, head_dim, "decode")
        t = grid(np.asarray(batch, dtype=float) * scale, context, heads, kv_heads)
        return self._widen(t, 4.0 * np.asarray(batch) * heads * np.asarray(context) * head_dim, dtype)

    def elementwise(self, nbytes, dtype: str = "bf16"):
        """A memory-bound kernel moving `nbytes` (reads + writes, at the dtype the caller counted)."""
        del dtype  # the caller's byte count already holds the element size
        return self.tables.floor_s + np.asarray(nbytes, dtype=float) / (self.hardware.memory_bandwidth * self.bw_scale)

    def _head_size(self, grids: dict[int, Grid], head_dim: int, what: str) -> tuple[Grid, float]:
        if not grids:
            raise KernelTableError(f"{self.tables.name}: no {what} attention table")
        if head_dim in grids:
            return grids[head_dim], 1.0
        d0 = min(grids, key=lambda d: (abs(np.log2(d / head_dim)), -d))  # nearest in ratio; ties: the larger
        return grids[d0], head_dim / d0

    def _widen(self, t, flops, dtype: str):
        if dtype in TABLE_DTYPES:
            return t
        if dtype not in WIDER_DTYPES:
            raise KernelTableError(f"dtype {dtype!r}: the kernel tables cover {', '.join(TABLE_DTYPES + WIDER_DTYPES)}")
        peak = self.hardware.peak_flops.get(dtype)
        if peak is None:
            raise KernelTableError(f"{self.hardware.name} has no peak_flops.{dtype} for the {dtype} rule")
        return np.maximum(2.0 * np.asarray(t), np.asarray(flops) / (peak * self.utilisation))


def kernel_model(hardware) -> KernelModel | None:
    """The kernel model of a GPU profile, or None (no tables: it keeps the analytic model)."""
    tables = kernel_tables(hardware.name) if hardware.kind == "gpu" else None
    return KernelModel(tables, hardware) if tables is not None else None


__all__ = ["MONOTONE", "Grid", "KernelModel", "KernelTableError", "KernelTables", "kernel_model", "kernel_status",
           "kernel_tables", "load_kernel_tables", "tables_dir"]
