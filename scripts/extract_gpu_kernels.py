"""Extracts NVIDIA's measured kernel latencies from the aiconfigurator-core wheel into compact CSV
tables, one folder per hwnas GPU profile (configs/gpu_kernels/GPU/), for latency/kernels.py.

Get the wheel (Apache-2.0, about 80 MB; only this script needs it, and pyarrow to read it):

    pip download --no-deps aiconfigurator-core==0.12.0 -d /tmp/aic
    pip install pyarrow
    python scripts/extract_gpu_kernels.py /tmp/aic/aiconfigurator_core-0.12.0-*.whl

What it keeps (see configs/gpu_kernels/README.md for the columns and why):
- one framework's tables, vLLM: GEMM (bf16, m <= 8192, k <= 16384, every n), context (prefill)
  and generation (decode) attention (bf16 activations and KV cache, no sliding window, head size
  <= 128, batch <= 64, up to 16,384 tokens); rows measured twice are merged by their median;
- for the A100 alone, SGLang's bf16 GEMM on vLLM's grid points: the cross-framework check of
  bench/gpu_kernels.py;
- per GPU, source.json: the package, framework version, device name, kernel names, filters, row
  counts and the system file's figures (bandwidth, bf16 peak).
A hwnas GPU profile with no system in the package (rtx4090) gets no folder and keeps the analytic
model; the script says so.
"""
from __future__ import annotations

import argparse
import io
import json
import re
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PACKAGE = "aiconfigurator-core"
FRAMEWORK = "vllm"  # why: configs/gpu_kernels/README.md
CROSS_FRAMEWORK = {"a100": "sglang"}  # a second framework's GEMM table, for the cross-framework check only
# hwnas profile name -> the package's system name. rtx4090: the package measures no consumer GPU (its
# nearest, the L40S, is another board: GDDR6 at 864 GB/s, 142 SMs), so it keeps the analytic model.
SYSTEMS = {"a100": "a100_sxm", "h100": "h100_sxm", "h200": "h200_sxm"}

# What hwnas archs need, with a margin: m = batch x tokens (prompts up to 2,304 tokens at batch 1-4),
# n up to a 50,257-token vocabulary, k up to the widest FFN (3,072); attention heads of 32-64.
GEMM_MAX = {"m": 8192, "k": 16384}
ATTN_MAX = {"context": {"batch_size": 64, "isl": 16384, "head_dim": 128},
            "generation": {"batch_size": 64, "step": 16383, "head_dim": 128}}

GEMM_COLUMNS = ("m", "n", "k")
PREFILL_COLUMNS = ("batch", "seq", "heads", "kv_heads", "head_dim")
DECODE_COLUMNS = ("batch", "context", "heads", "kv_heads", "head_dim")


def version_key(v: str) -> tuple:
    return tuple(int(x) if x.isdigit() else -1 for x in re.split(r"[.a-z]+", v) if x)


def latest_dir(names: list[str], system: str, op: str, framework: str, table: str) -> str | None:
    """The newest version folder of `framework` that holds `table` for `op` on `system`."""
    prefix = f"aiconfigurator_core/systems/data/{system}/{op}/{framework}/"
    versions = {n[len(prefix):].split("/")[0] for n in names if n.startswith(prefix) and n.endswith("/" + table)}
    return f"{prefix}{max(versions, key=version_key)}/" if versions else None


def read_parquet(wheel: zipfile.ZipFile, name: str):
    import pyarrow.parquet as pq
    return pq.read_table(io.BytesIO(wheel.read(name))).to_pandas()


def one(df, column: str) -> str:
    values = sorted(set(df[column].astype(str)))
    return values[0] if len(values) == 1 else ", ".join(values)


def merged(df, keys: list[str]):
    """Rows measured more than once (vLLM's A100 context table lists MHA twice) -> their median."""
    return df.groupby(keys, as_index=False)["latency"].median()


def repeats(df, keys: list[str]) -> dict:
    """How far two measurements of one shape lie apart: the tables' own noise, where they show it."""
    groups = df.groupby(keys)["latency"].agg(["min", "max", "size"])
    twice = groups[groups["size"] > 1]
    if twice.empty:
        return {}
    gap = twice["max"] / twice["min"] - 1
    return {"shapes": int(len(twice)), "median_gap": round(float(gap.median()), 4),
            "within_10": round(float((gap <= 0.1).mean()), 4)}


def us(ms: float) -> str:
    """Milliseconds -> microseconds at 4 significant digits (0.05%: far under the tables' own noise)."""
    import numpy as np
    return np.format_float_positional(ms * 1e3, precision=4, unique=False, fractional=False, trim="-")


def write_csv(path: Path, df, source: list[str], header: tuple[str, ...]) -> int:
    lines = [",".join(header) + ",us"]
    for row in df.sort_values(source).itertuples(index=False):
        d = row._asdict()
        lines.append(",".join(str(int(d[c])) for c in source) + "," + us(d["latency"]))
    path.write_text("\n".join(lines) + "\n")
    return len(lines) - 1


def gemm_table(wheel, names, system, framework):
    folder = latest_dir(names, system, "gemm", framework, "gemm_perf.parquet")
    if folder is None:
        return None, None
    df = read_parquet(wheel, folder + "gemm_perf.parquet")
    df = df[(df.gemm_dtype == "bfloat16") & (df.m <= GEMM_MAX["m"]) & (df.k <= GEMM_MAX["k"])]
    return df, folder


def attention_table(wheel, names, system, phase):
    table = f"{phase}_attention_perf.parquet"
    folder = latest_dir(names, system, "attention", FRAMEWORK, table)
    if folder is None:
        return None, None
    df = read_parquet(wheel, folder + table)
    keep = (df.attn_dtype == "bfloat16") & (df.kv_cache_dtype == "bfloat16") & (df.beam_width == 1)
    if "window_size" in df:
        keep &= df.window_size == 0
    for column, top in ATTN_MAX[phase].items():
        keep &= df[column] <= top
    return df[keep], folder


def system_figures(wheel, system: str) -> dict:
    import yaml
    spec = yaml.safe_load(wheel.read(f"aiconfigurator_core/systems/{system}.yaml"))["gpu"]
    keys = ("mem_bw", "mem_bw_empirical_scaling_factor", "mem_empirical_constant_latency", "bfloat16_tc_flops",
            "sm_version")
    return {k: spec[k] for k in keys if k in spec}


def extract(wheel_path: Path, out: Path) -> None:
    from latency.hardware import builtin_hardware, load_hardware
    wheel = zipfile.ZipFile(wheel_path)
    names = wheel.namelist()
    m = re.search(r"aiconfigurator_core-([^-]+)-", wheel_path.name)
    package_version = m.group(1) if m else "?"
    out.mkdir(parents=True, exist_ok=True)
    for name in builtin_hardware():
        if load_hardware(name).kind != "gpu":
            continue
        system = SYSTEMS.get(name)
        if system is None or f"aiconfigurator_core/systems/{system}.yaml" not in names:
            print(f"{name}: no tables in {PACKAGE} {package_version}; it keeps the analytic model")
            continue
        folder = out / name
        folder.mkdir(exist_ok=True)
        meta = {"package": PACKAGE, "package_version": package_version, "system": system,
                "system_figures": system_figures(wheel, system), "latency_unit": "us", "tables": {}}
        gemm, where = gemm_table(wheel, names, system, FRAMEWORK)
        if gemm is not None:
            rows = write_csv(folder / "gemm_bf16.csv", merged(gemm, list(GEMM_COLUMNS)), list(GEMM_COLUMNS),
                             GEMM_COLUMNS)
            meta["tables"]["gemm_bf16.csv"] = _describe(gemm, where, rows, {"gemm_dtype": "bfloat16", **GEMM_MAX})
            second = CROSS_FRAMEWORK.get(name)
            if second:
                other, other_where = gemm_table(wheel, names, system, second)
                grid = set(map(tuple, gemm[list(GEMM_COLUMNS)].to_numpy().tolist()))
                other = other[[tuple(r) in grid for r in other[list(GEMM_COLUMNS)].to_numpy().tolist()]]
                file = f"gemm_bf16.{second}.csv"
                rows = write_csv(folder / file, merged(other, list(GEMM_COLUMNS)), list(GEMM_COLUMNS),
                                 GEMM_COLUMNS)
                meta["tables"][file] = _describe(other, other_where, rows, {
                    "gemm_dtype": "bfloat16", "grid": f"the points of gemm_bf16.csv ({FRAMEWORK})",
                    "use": "cross-framework check only"})
        for phase, file, header, source in (
                ("context", "prefill_bf16.csv", PREFILL_COLUMNS, ["batch_size", "isl"]),
                ("generation", "decode_bf16.csv", DECODE_COLUMNS, ["batch_size", "step"])):
            df, where = attention_table(wheel, names, system, phase)
            if df is None:
                continue
            keys = source + ["num_heads", "num_key_value_heads", "head_dim"]
            rows = write_csv(folder / file, merged(df, keys), keys, header)
            meta["tables"][file] = _describe(df, where, rows, {
                "attn_dtype": "bfloat16", "kv_cache_dtype": "bfloat16", "window_size": 0, **ATTN_MAX[phase]}, keys)
        (folder / "source.json").write_text(json.dumps(meta, indent=1) + "\n")
        print(f"{name}: {system}, " + ", ".join(f"{f} {t['rows']} rows" for f, t in meta["tables"].items()))


def _describe(df, where: str, rows: int, filters: dict, keys: list[str] | None = None) -> dict:
    out = {"from": where.removeprefix("aiconfigurator_core/systems/"), "framework": one(df, "framework"),
           "version": one(df, "version"), "device": one(df, "device"), "kernel_source": one(df, "kernel_source"),
           "filters": filters, "measured_rows": int(len(df)), "rows": rows}
    if keys is not None and repeats(df, keys):
        out["measured_twice"] = repeats(df, keys)  # max/min - 1 over shapes measured twice
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", type=Path, help=f"the {PACKAGE} wheel (pip download --no-deps {PACKAGE}==0.12.0)")
    ap.add_argument("--out", type=Path, default=None, help="default: configs/gpu_kernels/")
    args = ap.parse_args()
    if not args.wheel.is_file():
        sys.exit(f"{args.wheel}: no such file; get it with `pip download --no-deps {PACKAGE}==0.12.0 -d /tmp/aic`")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        sys.exit("reading the tables needs pyarrow (only to regenerate them, not to use them): pip install pyarrow")
    from configs import config_dir
    extract(args.wheel, args.out or config_dir() / "gpu_kernels")


if __name__ == "__main__":
    main()
