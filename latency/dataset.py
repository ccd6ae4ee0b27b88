"""Latency datasets: one CSV row per (arch, workload, hardware), appended as profiling goes.

Each row carries the arch (JSON), its analytic costs, the timing (median, spread, samples) and the
metadata of the device it was measured on. Rows are appended with one write + fsync each, so a
killed run loses at most the row being written; `read_dataset` drops a torn last line and a resumed
run skips every (arch, workload) already present.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from space import Arch, analytic_cost
from space.errors import UserError

COLUMNS = ["hardware", "space", "workload", "arch_id", "median_s", "spread", "n_samples", "remeasured",
           "ref_ratio", "ref_s", "ref_id", "params", "flops", "bytes", "ops", "device", "device_name", "cpu_model",
           "threads", "torch", "date", "arch"]


def row_for(arch: Arch, workload, hardware: str, space: str, timing, meta: dict[str, Any]) -> dict[str, Any]:
    cost = analytic_cost(arch, workload)
    return {"hardware": hardware, "space": space, "workload": str(workload), "arch_id": arch.id,
            "median_s": timing.median, "spread": timing.spread, "n_samples": len(timing.samples),
            "remeasured": timing.remeasured, "ref_ratio": timing.ratio, "ref_s": meta.get("ref_s"),
            "ref_id": meta.get("ref_id"), "params": cost.params, "flops": cost.flops, "bytes": cost.bytes,
            "ops": cost.ops, **{k: meta.get(k) for k in ("device", "device_name", "cpu_model", "threads", "torch", "date")},
            "arch": arch.to_json()}


def _heal(path: Path) -> None:
    """A kill mid-write can leave a torn last line: cut the file back to its last newline."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)


def append_rows(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _heal(path)
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        for row in rows:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="raise")
            if new:
                writer.writeheader()
                new = False
            writer.writerow(row)
            f.write(buf.getvalue())  # the header and the row in one write
            f.flush()
            os.fsync(f.fileno())


def read_dataset(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no latency dataset; measure one with `nas profile --hardware NAME`")
    if path.suffix == ".csv" and os.access(path, os.W_OK):
        _heal(path)
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise UserError(f"{path}: not a latency dataset ({str(e).splitlines()[0]})") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{path}: not a latency dataset (missing columns: {', '.join(missing)})")
    return df


def done_keys(path: str | Path) -> set[tuple[str, str, str]]:
    """(hardware, workload, arch_id) already measured: what a resumed run skips."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return set()
    df = read_dataset(path)
    return set(zip(df["hardware"], df["workload"], df["arch_id"]))


def latency_target(df: pd.DataFrame) -> "pd.Series":
    """The latency a predictor learns, in seconds: each arch's ratio to the reference arch timed in
    the same rounds, times the reference's median over the whole dataset. The machine's drift
    between groups (measured here: 0.6x to 1.5x within minutes) cancels in the ratio; rows without
    a reference fall back to their raw median."""
    if "ref_ratio" not in df or df.ref_ratio.isna().all():
        return df.median_s
    scale = df.ref_id.map(reference_scales(df))
    return (df.ref_ratio * scale).fillna(df.median_s)


def reference_scales(df: pd.DataFrame) -> "pd.Series":
    """Each reference arch's median latency over the whole dataset: the scale that a ratio to it
    (measured beside it, at any time) turns back into seconds."""
    return df.groupby("ref_id").ref_s.median()


def reference_scale(df: pd.DataFrame, ref_id: str) -> float | None:
    scales = reference_scales(df)
    return float(scales[ref_id]) if ref_id in scales.index else None


def archs_of(df: pd.DataFrame) -> list[Arch]:
    return [Arch.from_dict(json.loads(a)) for a in df["arch"]]
