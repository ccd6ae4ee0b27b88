"""Ray, for real (a local cluster of 2 CPUs): profiling through a remote task, and scoring
candidates on actors that each hold the supernet, with a killed worker retried."""
from __future__ import annotations

import pytest
import torch

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # a local Ray cluster takes ~10 s to start and 500 MB

from latency.dataset import read_dataset  # noqa: E402
from latency.hardware import load_hardware  # noqa: E402
from latency.profile import profile  # noqa: E402
from latency.protocol import TimingProtocol  # noqa: E402
from nas.ray_adapter import RayEvaluatorPool, ray_group_runner  # noqa: E402
from space import Workload  # noqa: E402
from supernet.checkpoint import load_supernet  # noqa: E402
from supernet.evaluate import Evaluator  # noqa: E402
from supernet.train import TrainConfig, train_supernet  # noqa: E402
from tests.conftest import tiny_space  # noqa: E402
from tests.test_train import VAL, Counting  # noqa: E402

SPACES = {"decoder": tiny_space("decoder")}


def toy_factory():
    """A scorer factory defined inside a function, so Ray ships it by value (the workers cannot
    import this test module)."""
    def toy_evaluator(folder, batches, device="cpu"):
        model, _ = load_supernet(folder)
        return Evaluator(model, VAL)
    return toy_evaluator


@pytest.fixture(scope="module")
def cluster():
    hw = load_hardware("xeon-2vcpu")
    run_group = ray_group_runner(hw, "local")  # starts a private local Ray offering the resource
    yield hw, run_group
    ray.shutdown()


def test_profile_through_ray(cluster, tmp_path) -> None:
    hw, run_group = cluster
    space = SPACES["decoder"]
    out = tmp_path / "lat.csv"
    added = profile(space, hw, Workload(1, 8, 2), 3, out, protocol=TimingProtocol(warmup=1, rounds=3, extra_rounds=0),
                    run_group=run_group, threads=1)
    df = read_dataset(out)
    assert added == 3 and len(df) == 3 and (df.median_s > 0).all() and (df.ref_ratio > 0).all()
    assert set(df.threads) == {1} and df.device.iloc[0] == "cpu"


def test_actor_pool_matches_serial_and_survives_a_killed_worker(cluster, tmp_path) -> None:
    space = SPACES["decoder"]
    train_supernet(space, Counting(), VAL, tmp_path, TrainConfig(steps=3, batch_size=4, seq_len=24, warmup=1,
                                                                 eval_every=100, ckpt_every=3), {"data": None})
    toy_evaluator = toy_factory()
    archs = [space.sample(i) for i in range(6)]
    serial = toy_evaluator(str(tmp_path), 1).losses(archs)
    pool = RayEvaluatorPool(str(tmp_path), 1, workers=2, evaluator_factory=toy_evaluator)
    assert pool.losses(archs) == pytest.approx(serial, rel=1e-6)
    ray.kill(pool.actors[0], no_restart=False)  # a worker dies; Ray restarts it; its chunk is retried
    more = [space.sample(i) for i in range(6, 10)]
    want = toy_evaluator(str(tmp_path), 1).losses(more)
    assert pool.losses(more) == pytest.approx(want, rel=1e-6)
    pool.close()
    assert torch.get_num_threads() >= 1


def test_search_with_two_workers_equals_serial(cluster, tmp_path) -> None:
    from nas.search import run_search
    from space import analytic_cost
    space = SPACES["decoder"]
    train_supernet(space, Counting(), VAL, tmp_path / "sn", TrainConfig(steps=3, batch_size=4, seq_len=24, warmup=1,
                                                                        eval_every=100, ckpt_every=3), {"data": None})

    toy_evaluator = toy_factory()

    def latency(archs):
        return [analytic_cost(a).flops / 1e9 for a in archs]

    budget = sorted(latency([space.sample(i) for i in range(50)]))[35]
    serial = run_search(space, "evolution", evaluate=toy_evaluator(str(tmp_path / "sn"), 1).losses,
                        latency=latency, budget_s=budget, iterations=24, batch=8, run_dir=tmp_path / "serial", seed=3,
                        options={"population": 8, "sample_size": 3})
    pool = RayEvaluatorPool(str(tmp_path / "sn"), 1, workers=2, evaluator_factory=toy_evaluator)
    parallel = run_search(space, "evolution", evaluate=pool.losses, latency=latency, budget_s=budget, iterations=24,
                          batch=8, run_dir=tmp_path / "ray", seed=3, options={"population": 8, "sample_size": 3})
    pool.close()
    assert [t["arch_id"] for t in serial.trials] == [t["arch_id"] for t in parallel.trials]
    assert [t["loss"] for t in serial.trials] == pytest.approx([t["loss"] for t in parallel.trials], rel=1e-6)


@pytest.mark.slow  # ~40 s: a tiny supernet, two searches through the command, one on 2 Ray workers
def test_command_search_on_two_workers_equals_serial(tiny_work) -> None:
    """`nas search --workers 2`: the API hands the pool its own scorer (no import back into nas.api)
    and the answer and every trial's loss equal a serial search's."""
    import csv

    from tests.conftest import run_nas
    r = run_nas(tiny_work, "train-supernet", "--space", "tiny.yaml", "--data", "corpus", "--steps", "4",
                "--batch-size", "4", "--seq-len", "32", "--out", "ray-sn")
    assert r.returncode == 0, r.stderr
    rows = {}
    for name, extra in (("serial", []), ("ray", ["--workers", "2"])):
        r = run_nas(tiny_work, "search", "--hardware", "a100", "--latency-budget", "2s", "--space", "tiny.yaml",
                    "--supernet", "ray-sn", "--iterations", "10", "--eval-batches", "1", "--no-reuse",
                    "--out", f"run-{name}", *extra)
        assert r.returncode == 0, r.stderr
        with open(tiny_work / f"run-{name}" / "trials.csv") as f:
            rows[name] = [(t["arch_id"], float(t["loss"])) for t in csv.DictReader(f)]
    assert [a for a, _ in rows["ray"]] == [a for a, _ in rows["serial"]]
    assert [x for _, x in rows["ray"]] == pytest.approx([x for _, x in rows["serial"]], rel=1e-5)
