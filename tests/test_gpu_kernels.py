"""The GPU kernel model (latency/kernels.py): the shipped tables per GPU profile, the loader on a tiny
fixture in the real format, exactness at grid points, monotonicity, held-out error, the corrections."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from latency.hardware import builtin_hardware, load_hardware
from latency.kernels import (DECODE_AXES, GEMM_AXES, MONOTONE, PREFILL_AXES, Grid, KernelModel, KernelTableError,
                             _read_csv, kernel_model, kernel_status, kernel_tables, load_kernel_tables, tables_dir)

WITH_TABLES = {"a100": "A100", "h100": "H100", "h200": "H200"}  # profile -> what its device name holds
GPUS = [n for n in builtin_hardware() if load_hardware(n).kind == "gpu"]
RNG_SEED = 0


@pytest.fixture(scope="module")
def a100() -> KernelModel:
    return kernel_model(load_hardware("a100"))


@pytest.mark.parametrize("name", GPUS)
def test_every_gpu_profile_resolves_to_tables_or_says_it_has_none(name: str) -> None:
    hw = load_hardware(name)
    tables = kernel_tables(name)
    if name not in WITH_TABLES:
        assert tables is None and kernel_model(hw) is None
        assert "no kernel tables" in kernel_status(hw) and "analytic" in kernel_status(hw)
        return
    assert tables is not None and WITH_TABLES[name] in kernel_status(hw)
    assert tables.prefill and tables.decode and 128 in tables.prefill and 128 in tables.decode
    model = kernel_model(hw)
    assert 1e-6 < model.gemm(1, 768, 768) < 1e-4  # a batch-1 layer: microseconds
    assert model.decode(1, 512, 12, 12, 64) > 0 and model.prefill(1, 512, 12, 12, 64) > 0


def test_the_gpus_we_claim_have_tables() -> None:
    assert set(WITH_TABLES) <= set(GPUS)
    assert kernel_model(load_hardware("epyc-2vcpu")) is None  # a CPU profile has none either
    with pytest.raises(KernelTableError, match="cpu profile"):
        KernelModel(kernel_tables("a100"), load_hardware("epyc-2vcpu"))


def _write_fixture(folder) -> None:
    folder.mkdir()
    rows = ["m,n,k,us"] + [f"{m},{n},{k},{m * n * k / 1e4 + 2}" for m in (1, 4) for n in (32, 64) for k in (32, 64)]
    (folder / "gemm_bf16.csv").write_text("\n".join(rows) + "\n")
    attn = [f"{b},{s},{h},{kv},64,{10 + b * s * h / 100}" for b in (1, 2) for s in (1, 16) for h, kv in
            ((2, 1), (2, 2))]
    (folder / "prefill_bf16.csv").write_text("batch,seq,heads,kv_heads,head_dim,us\n" + "\n".join(attn) + "\n")
    (folder / "decode_bf16.csv").write_text("batch,context,heads,kv_heads,head_dim,us\n" + "\n".join(attn) + "\n")
    (folder / "source.json").write_text(json.dumps({"package": "fixture", "tables": {}}))


def test_loader_reads_a_tiny_fixture_in_the_real_format(tmp_path) -> None:
    _write_fixture(tmp_path / "fake")
    t = load_kernel_tables(tmp_path / "fake")
    assert t.gemm(4, 64, 64) == pytest.approx((4 * 64 * 64 / 1e4 + 2) * 1e-6)
    assert t.gemm(1, 32, 32) == pytest.approx(t.floor_s)
    assert set(t.prefill) == {64} and t.prefill[64](2, 16, 2, 2) == pytest.approx((10 + 2 * 16 * 2 / 100) * 1e-6)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "gemm_bf16.csv").write_text("m,n,latency\n1,2,3\n")
    with pytest.raises(KernelTableError, match="gemm_bf16.csv: columns m,n,latency"):
        load_kernel_tables(tmp_path / "bad")


def test_grid_points_are_reproduced_exactly(a100: KernelModel) -> None:
    """A table read without the monotone fit returns its measured points exactly; the model's own
    (monotone) tables stay close to them there."""
    rng = np.random.default_rng(RNG_SEED)
    rows = _read_csv(tables_dir() / "a100" / "gemm_bf16.csv", GEMM_AXES)
    pick = rows[rng.choice(len(rows), 300, replace=False)]
    raw = Grid.from_rows(GEMM_AXES, rows[:, :3], rows[:, 3] * 1e-6)
    assert np.allclose(raw(*pick[:, :3].T), pick[:, 3] * 1e-6, rtol=1e-9)
    assert np.median(np.abs(a100.gemm(*rows[:, :3].T) / (rows[:, 3] * 1e-6) - 1)) < 0.02
    for name, axes in (("prefill", PREFILL_AXES), ("decode", DECODE_AXES)):
        r = _read_csv(tables_dir() / "a100" / f"{name}_bf16.csv", axes + ("head_dim",))
        raw = Grid.from_rows(axes, r[:, :4], r[:, 5] * 1e-6)
        pick = r[rng.choice(len(r), 200, replace=False)]
        assert np.allclose(raw(*pick[:, :4].T), pick[:, 5] * 1e-6, rtol=1e-9)
        fitted = getattr(a100, name)(r[:, 0], r[:, 1], r[:, 2], r[:, 3], 128)  # the model's path, head size 128
        assert np.median(np.abs(fitted / (r[:, 5] * 1e-6) - 1)) < 0.02


@pytest.mark.parametrize("name", sorted(WITH_TABLES))
def test_gemm_is_monotone_in_m_n_k_on_a_sample(name: str) -> None:
    """On, between and above the grid points (m to 32,768, n to 131,072, k to 32,768); below the
    grid (n or k under 32, which hwnas layers never are) each axis keeps its own slope."""
    model = kernel_model(load_hardware(name))
    rng = np.random.default_rng(RNG_SEED)
    m, n, k = (2.0 ** rng.uniform(0, 15, 2000), 2.0 ** rng.uniform(5, 17, 2000), 2.0 ** rng.uniform(5, 15, 2000))
    base = model.gemm(m, n, k)
    for grown in ((m * 1.3, n, k), (m, n * 1.3, k), (m, n, k * 1.3)):
        assert np.all(model.gemm(*grown) >= base * (1 - 1e-9))
    assert model.gemm(16384, 4096, 4096) == pytest.approx(2 * model.gemm(8192, 4096, 4096))  # above: as the work
    assert model.gemm(1, 768, 16) <= model.gemm(1, 768, 32)  # below: never more than the smallest measured


# Measured by bench/gpu_kernels.py (5 seeds): within +-10% 84-97% per table, median error 1.7-3.7%.
HELD_OUT_WITHIN_10 = 0.75
HELD_OUT_MEDIAN = 0.06


@pytest.mark.parametrize("name", sorted(WITH_TABLES))
def test_held_out_grid_points_stay_within_the_measured_error(name: str) -> None:
    folder = tables_dir() / name
    tables = [("gemm", GEMM_AXES, _read_csv(folder / "gemm_bf16.csv", GEMM_AXES), MONOTONE["gemm"])]
    for table, axes in (("prefill", PREFILL_AXES), ("decode", DECODE_AXES)):
        rows = _read_csv(folder / f"{table}_bf16.csv", axes + ("head_dim",))
        for d in np.unique(rows[:, -2]):
            tables.append((f"{table} d={d:g}", axes, rows[rows[:, -2] == d][:, [0, 1, 2, 3, 5]], MONOTONE[table]))
    for label, axes, rows, monotone in tables:
        hold = np.random.default_rng(RNG_SEED).random(len(rows)) < 0.1
        grid = Grid.from_rows(axes, rows[~hold, :-1], rows[~hold, -1] * 1e-6, monotone=monotone)
        rel = np.abs(grid(*rows[hold, :-1].T) / (rows[hold, -1] * 1e-6) - 1)
        assert np.mean(rel <= 0.1) >= HELD_OUT_WITHIN_10, label
        assert np.median(rel) <= HELD_OUT_MEDIAN, label


def test_corrections(a100: KernelModel) -> None:
    hw = a100.hardware
    assert a100.gemm(64, 768, 768, "fp16") == a100.gemm(64, 768, 768)
    small, big = (1, 768, 768), (4096, 4096, 4096)
    assert a100.gemm(*small, "fp32") == pytest.approx(2 * a100.gemm(*small))  # memory-bound: twice the bytes
    flops = 2 * 4096 ** 3
    assert a100.gemm(*big, "fp32") == pytest.approx(flops / (hw.peak_flops["fp32"] * a100.utilisation))
    assert 0.9 < a100.utilisation <= 1  # the A100's table reaches 96% of the bf16 peak
    with pytest.raises(KernelTableError, match="int8"):
        a100.gemm(1, 64, 64, "int8")
    # head sizes: the A100 has a 128 table only; 64 is predicted from it, and costs less
    assert a100.prefill(1, 2048, 12, 12, 64) < a100.prefill(1, 2048, 12, 12, 128)
    assert a100.decode(1, 2048, 12, 12, 64) < a100.decode(1, 2048, 12, 12, 128)
    assert a100.prefill(1, 1024, 8, 8, 128, causal=False) > a100.prefill(1, 1024, 8, 8, 128)
    assert np.all(np.diff(a100.decode(1, np.arange(1, 3000, 50), 8, 2, 128)) >= 0)  # monotone in length
    assert np.all(np.diff(a100.prefill(np.arange(1, 9), 512, 8, 2, 128)) >= 0)  # and in batch
    # element-wise: the launch floor plus the bytes at the scaled bandwidth
    assert a100.elementwise(0) == pytest.approx(a100.tables.floor_s)
    assert a100.elementwise(1e9) == pytest.approx(a100.tables.floor_s + 1e9 / (hw.memory_bandwidth * 0.8))


def test_import_is_torch_free_and_side_effect_free() -> None:
    code = ("import sys, latency.kernels as k; assert 'torch' not in sys.modules; "
            "assert k.load_kernel_tables.cache_info().currsize == 0")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
