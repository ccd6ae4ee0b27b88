"""The latency workflow end to end through the CLI, on a dataset whose 'timings' are synthetic
(a fixed function of the analytic costs with noise): profile -> fit-predictor -> predict -> hardware."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from latency.features import featurize
from latency.hardware import load_hardware
from latency.profile import profile
from latency.protocol import Timing
from latency.store import dataset_path
from space import load_space


def synthetic_group(hw):
    space = load_space("lm-shakespeare")
    rng = np.random.default_rng(0)

    def run(archs, workload, device, protocol, threads, reference=None):
        x = featurize(archs, space, workload, hw)
        ops, flops = x[:, -5], x[:, -7]  # analytic.ops, analytic.flops
        t = (4e-6 * ops + flops / 2e10) * rng.lognormal(0, 0.02, len(archs))
        return [Timing(float(v), 0.02, (float(v),) * 5, 0) for v in t], {"device": "cpu", "threads": 1}
    return run


@pytest.fixture()
def home(tmp_path):
    env = {**os.environ, "HWNAS_HOME": str(tmp_path)}
    hw = load_hardware("xeon-2vcpu")
    space = load_space("lm-shakespeare")
    profile(space, hw, space.workload, 120, dataset_path(hw.name, tmp_path), run_group=synthetic_group(hw))
    return tmp_path, env


def nas(env, *args):
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True, env=env, timeout=300)


def test_fit_predict_hardware(home, tmp_path) -> None:
    root, env = home
    r = nas(env, "fit-predictor", "--hardware", "xeon-2vcpu")
    assert r.returncode == 0, r.stderr
    for word in ("gbt", "flops only", "analytic (uncalibrated)", "calibrated (20 samples)", "within ±10%", "Kendall"):
        assert word in r.stdout
    assert "repeatability" in r.stderr
    bundles = list((root / "hardware" / "xeon-2vcpu").glob("predictor-*.pt"))
    assert len(bundles) == 1 and bundles[0].with_suffix(".png").is_file()
    again = nas(env, "fit-predictor", "--hardware", "xeon-2vcpu")  # no new rows: no fair held-out comparison
    assert again.returncode == 0 and "a refit on the rows the previous one was fitted on" in again.stdout + again.stderr
    assert not list((root / "hardware" / "xeon-2vcpu").glob("*-candidate.pt"))
    arch_file = tmp_path / "a.yaml"
    arch_file.write_text(nas(env, "space", "sample", "lm-shakespeare", "-n", "2", "--seed", "7").stdout)
    r = nas(env, "predict", "--hardware", "xeon-2vcpu", "--arch", str(arch_file))
    assert r.returncode == 0, r.stderr
    assert "measured" in r.stdout and "ms" in r.stdout
    r = nas(env, "predict", "--hardware", "a100", "--arch", str(arch_file))
    assert r.returncode == 0 and "kernels" in r.stdout and "measured kernel tables" in r.stderr
    r = nas(env, "predict", "--hardware", "rtx4090", "--arch", str(arch_file))  # a GPU without tables
    assert r.returncode == 0 and "analytic" in r.stdout and "no measurements" in r.stderr
    r = nas(env, "hardware", "list")
    assert r.returncode == 0
    line = next(l for l in r.stdout.splitlines() if l.startswith(" xeon-2vcpu") or l.startswith("xeon-2vcpu"))
    assert "measured (yours, 120 rows" in line  # synthetic rows (no reference arch) are not merged with the shipped
    assert "kernel model" in next(l for l in r.stdout.splitlines() if "a100" in l)
    assert "analytic only" in next(l for l in r.stdout.splitlines() if "rtx4090" in l)


def test_fit_without_data_is_one_line(tmp_path) -> None:
    env = {**os.environ, "HWNAS_HOME": str(tmp_path)}
    r = nas(env, "fit-predictor", "--hardware", "rtx4090")
    assert r.returncode == 1 and "no latency dataset for rtx4090" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
