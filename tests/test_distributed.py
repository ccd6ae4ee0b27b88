"""Distributed supernet training for real: `torchrun` with the gloo backend on this CPU.

Two ranks and one rank with the same global batch and seed must follow the same loss curve. Why
the tolerance can be tight: every rank draws the same archs and its half of the same global batch
(both derived from (seed, step)), and DDP averages the two halves' gradients, which is the
full-batch gradient of a language model (equal token counts) up to float32 summation order: about
1e-7 relative per step. After a few AdamW steps the curves agree to ~1e-6 and the weights to ~1e-5;
we allow 1e-4 relative on losses and 1e-4 absolute on weights, far below what a wrong gradient,
a wrong data split or a decayed unused parameter would give (those differ at 1e-2 or more).
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # each test starts torchrun and 2 Python processes with torch (~15-40 s)

DRIVER = """
import sys
from nas import api
out, steps = sys.argv[1], int(sys.argv[2])
api.train_supernet("tiny.yaml", out=out, data="corpus", steps=steps, batch_size=8, seq_len=32, lr=1e-2,
                   settings={"eval_every": 1, "ckpt_every": 2, "warmup": 2}, device="cpu", threads=1,
                   progress=False)
"""


@pytest.fixture()
def work(tiny_work: Path, tmp_path: Path) -> Path:
    (tmp_path / "tiny.yaml").write_text((tiny_work / "tiny.yaml").read_text())
    (tmp_path / "corpus").symlink_to(tiny_work / "corpus")
    (tmp_path / "drive.py").write_text(DRIVER)
    return tmp_path


def torchrun(work: Path, ranks: int, *args: str, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
           "--master_port", str(29500 + os.getpid() % 1000), *args]
    return subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, **kw)


def single(work: Path, out: str, steps: int) -> None:
    r = subprocess.run([sys.executable, "drive.py", out, str(steps)], cwd=work, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr


def log(folder: Path) -> list[dict[str, float]]:
    with open(folder / "log.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    return {k: v for k, v in load_file(str(folder / "supernet.safetensors")).items() if k.startswith("model.")}


def assert_same_run(a: Path, b: Path) -> None:
    la, lb = log(a), log(b)
    assert [r["step"] for r in la] == [r["step"] for r in lb]
    for ra, rb in zip(la, lb):
        for key in ("loss", "val_largest", "val_smallest"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-4), (ra["step"], key)
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    worst = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    assert worst < 1e-4, worst


def test_two_ranks_follow_one_rank(work: Path) -> None:
    single(work, "one", 6)
    p = torchrun(work, 2, "drive.py", "two", "6")
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    assert_same_run(work / "one", work / "two")
    assert log(work / "one")[-1]["val_largest"] < log(work / "one")[0]["val_largest"]  # it learns


def test_ddp_run_killed_and_resumed_on_another_number_of_ranks(work: Path) -> None:
    single(work, "straight", 10)
    p = torchrun(work, 2, "drive.py", "killed", "10")
    ckpt = work / "killed" / "supernet.safetensors"
    deadline = time.time() + 240
    while time.time() < deadline:  # kill both ranks once a mid-run checkpoint exists
        if ckpt.exists() and (work / "killed" / "log.csv").exists() and len(log(work / "killed")) >= 4:
            break
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    from supernet.checkpoint import read_record
    step = read_record(work / "killed").step
    assert 2 <= step < 10, step  # stopped mid-run, at a checkpoint
    single(work, "killed", 10)  # resumed by one process
    assert read_record(work / "killed").step == 10
    assert_same_run(work / "straight", work / "killed")


def test_torchrun_runs_the_nas_command(work: Path) -> None:
    p = torchrun(work, 2, "-m", "nas", "train-supernet", "--space", "tiny.yaml", "--data", "corpus", "--steps", "2",
                 "--batch-size", "4", "--seq-len", "32", "--device", "cpu", "--out", "cli")
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    assert "2 rank(s)" in out and out.count("supernet saved") == 1  # rank 0 alone reports
    assert (work / "cli" / "supernet.safetensors").is_file()
