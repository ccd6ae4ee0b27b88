"""Budgets that hold: upper bounds at a confidence, analytic answers that show their range, a
predictor replaced only by a better one, and `nas measure` timing an export as a user would."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from latency.dataset import append_rows, read_dataset, reference_scale, row_for
from latency.hardware import load_hardware
from latency.model import latency_model, z_of
from latency.profile import reference_arch
from latency.protocol import Timing
from latency.store import bundle_path, find_bundle, shipped_root
from nas import api
from space import load_space
from space.errors import UserError

LM = load_space("lm-shakespeare")


def test_higher_confidence_never_admits_a_slower_arch() -> None:
    model = latency_model(load_hardware("a100"), LM, LM.workload)
    archs = [LM.sample(i) for i in range(60)]
    point, _ = model.predict(archs)
    bounds = {c: model.bound(archs, c) for c in (0.5, 0.7, 0.9, 0.99)}
    assert np.allclose(bounds[0.5], point)  # 0.5: the point prediction itself
    for lo, hi in ((0.5, 0.7), (0.7, 0.9), (0.9, 0.99)):
        assert (bounds[hi] >= bounds[lo]).all()
    budget = float(np.median(point))
    admitted = {c: {a.id for a, b in zip(archs, bounds[c]) if b <= budget} for c in bounds}
    assert admitted[0.99] <= admitted[0.9] <= admitted[0.7] <= admitted[0.5] and admitted[0.5] != admitted[0.99]
    with pytest.raises(UserError, match="--confidence 1.0"):
        z_of(1.0)


def test_analytic_answers_carry_the_range_of_their_constants() -> None:
    hw = load_hardware("a100")
    assert hw.op_overhead_range == (5e-6, 12e-6) and hw.efficiency["bandwidth"][1] == 0.75
    model = latency_model(hw, LM, LM.workload)
    archs = [LM.sample(i) for i in range(5)]
    point, rel = model.predict(archs)
    fast, slow = model.predict_range(archs)
    assert (fast < point).all() and (point < slow).all() and (rel > 0.05).all()
    assert "range 5-12 us" in model.describe()


def test_search_on_an_unmeasured_gpu_says_how_sure_it_is(tiny_trained: Path, tmp_path) -> None:
    run = api.search("a100", "4ms", space=tiny_trained / "tiny.yaml", supernet=tiny_trained / "sn", iterations=8,
                     eval_batches=1, out=tmp_path / "run", options={"population": 4, "sample_size": 2},
                     progress=False)
    note = next(n for n in run.notes if "never measured" in n)
    assert "across the profile's constant ranges" in note and "nas profile --hardware a100" in note
    assert run.record.confidence == 0.9 and run.record.analytic_range["profile_minutes"] > 0
    assert all(t["latency_bound_s"] >= t["latency_s"] for t in run.trials)
    assert all(t["latency_bound_s"] <= 4e-3 for t in run.ranking)
    card = api.export(run.run_dir, out=tmp_path / "model").card
    assert card.latency_bound_s == pytest.approx(run.ranking[0]["latency_bound_s"]) and card.confidence == 0.9
    assert "at 90% confidence" in (tmp_path / "model" / "README.md").read_text()


# ---- a predictor is replaced only by a better one ------------------------------------------------------

def _few_rows(path: Path, n: int, threads: int, noise: float, seed: int = 5) -> None:
    """n archs the shipped dataset does not hold, 'measured' as the shipped predictor says (with a
    little noise): a profile in which the shipped predictor is right."""
    hw = load_hardware("xeon-2vcpu")
    shipped = latency_model(hw, LM, LM.workload)
    ref = reference_arch(LM)
    scale = reference_scale(read_dataset(shipped_root() / "xeon-2vcpu" / "latency.csv"), ref.id)
    rng = np.random.default_rng(seed)
    archs = [LM.sample(10_000 + i) for i in range(n)]
    truth = shipped.predict(archs)[0] * rng.lognormal(0, noise, n)
    meta = {"device": "cpu", "device_name": "test", "cpu_model": "test", "threads": threads, "torch": "x",
            "date": "2026-11-23", "ref_s": scale, "ref_id": ref.id}
    append_rows(path, [row_for(a, LM.workload, hw.name, LM.name, Timing(float(t), 0.01, (float(t),) * 5, 0,
                                                                          float(t) / scale), meta)
                       for a, t in zip(archs, truth)])


def test_a_few_rows_do_not_displace_a_better_predictor(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HWNAS_HOME", str(tmp_path / "home"))
    data = tmp_path / "p.csv"
    _few_rows(data, 40, threads=2, noise=0.03)  # 2 threads: not mergeable with the 1-thread shipped data
    report = api.fit_predictor("xeon-2vcpu", data=data, progress=False)
    assert not report.answers and report.path.name.endswith("-candidate.pt") and report.path.is_file()
    assert "keeps answering" in report.verdict and "current predictor" in report.metrics
    assert report.metrics["current predictor"]["mape"] < report.metrics["gbt"]["mape"]
    assert find_bundle("xeon-2vcpu", LM.name, LM.workload).parent == shipped_root() / "xeon-2vcpu"  # still shipped
    forced = api.fit_predictor("xeon-2vcpu", data=data, force=True, progress=False)
    assert forced.answers and forced.path == bundle_path("xeon-2vcpu", LM.name, LM.workload)


def test_a_profile_written_to_out_changes_nothing(tmp_path, monkeypatch, tiny_trained) -> None:
    monkeypatch.setenv("HWNAS_HOME", str(tmp_path / "home"))
    out = tmp_path / "mine.csv"
    res = api.profile("xeon-2vcpu", space=tiny_trained / "tiny.yaml", samples=3, rounds=3, out=out, progress=False)
    assert res.added == 3 and out.is_file() and not (tmp_path / "home").exists()


# ---- nas measure ---------------------------------------------------------------------------------------

def test_nas_measure_times_an_export_in_its_own_process(tiny_trained: Path, tmp_path, nas_cli) -> None:
    run = api.search("xeon-2vcpu", "2s", space=tiny_trained / "tiny.yaml", supernet=tiny_trained / "sn",
                     iterations=8, eval_batches=1, out=tmp_path / "run", options={"population": 4, "sample_size": 2},
                     progress=False)
    api.export(run.run_dir, out=tmp_path / "model")
    m = api.measure(tmp_path / "model", rounds=5)
    assert m.median_s > 0 and 0 <= m.spread < 5 and len(m.samples) == 5 and m.threads == 1  # xeon-2vcpu: 1 thread
    assert m.budget_s == 2.0 and m.within_budget and m.predicted_s is not None and m.workload == "batch=1,len=16,gen=8"
    assert 0 < m.prefill_s < m.median_s and m.decode_per_token_s > 0  # time to first token, then per token
    r = nas_cli(tmp_path, "measure", "model", "--rounds", "3")
    assert r.returncode == 0, r.stderr
    assert "raw wall clock" in r.stdout and "within budget" in r.stdout and "time to first token" in r.stdout
    r = nas_cli(tmp_path, "measure", "nowhere")
    assert r.returncode == 1 and "no config.json" in r.stderr


def test_measure_says_where_it_timed_a_gpu_model(tiny_trained: Path, tmp_path) -> None:
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the A100 model would be timed on it")
    api.export(supernet=tiny_trained / "sn", arch=load_space(tiny_trained / "tiny.yaml").smallest(),
               out=tmp_path / "model")
    m = api.measure(tmp_path / "model", hardware="a100", rounds=3)
    assert "a100 (a GPU) is not on this machine" in m.note and m.predicted_s is None
    assert json.loads((tmp_path / "model" / "config.json").read_text())["hardware"] is None


def _as_if_on(model, monkeypatch, **cpu) -> None:
    """This machine, seen as the profile's CPU (its model name; vendor, family, model as given)."""
    import latency.runner
    monkeypatch.setattr(latency.runner, "cpu_model", lambda: model.bundle.dataset["cpu_model"])
    monkeypatch.setattr(latency.runner, "cpu_identity", lambda: {**model.hardware.cpu, **cpu})


def test_a_lookalike_cpu_is_named(monkeypatch) -> None:
    import latency.runner
    from latency.model import device_present, other_cpu
    model = latency_model(load_hardware("epyc-2vcpu"), LM, LM.workload)
    _as_if_on(model, monkeypatch)
    assert device_present(model) and other_cpu(model) == ""
    _as_if_on(model, monkeypatch, family=23)  # "AMD EPYC" too, but Zen 1: it times otherwise
    assert device_present(model)  # still calibrated by the reference arch, to first order
    assert other_cpu(model) == "this machine's CPU is family 23, not the family 25 that epyc-2vcpu was measured on"
    import dataclasses  # a dataset measured here (its rows name this CPU's numbers): no warning, whatever the profile says
    here = dataclasses.replace(model, bundle=dataclasses.replace(
        model.bundle, dataset={**model.bundle.dataset, "device_name": "AMD EPYC (family 23, model 1)"}))
    monkeypatch.setattr(latency.runner, "cpu_label", lambda: "AMD EPYC (family 23, model 1)")
    assert other_cpu(here) == ""
    monkeypatch.setattr(latency.runner, "cpu_label", lambda: "AMD EPYC (family 23, model 8)")
    assert other_cpu(here) == ("this machine's CPU is AMD EPYC (family 23, model 8), not the AMD EPYC (family 23, "
                               "model 1) that epyc-2vcpu's latency data was measured on")
    monkeypatch.undo()
    xeon = latency_model(load_hardware("xeon-2vcpu"), LM, LM.workload)
    import latency.runner
    monkeypatch.setattr(latency.runner, "cpu_model", lambda: "Some Other CPU")
    assert other_cpu(xeon) == ""  # plainly another machine: nothing to warn about


def test_calibration_puts_predictions_on_todays_scale(monkeypatch) -> None:
    from latency.model import calibrate
    models = [latency_model(load_hardware(name), LM, LM.workload) for name in ("xeon-2vcpu", "epyc-2vcpu")]
    for model in models:
        assert model.bundle.dataset["ref_s"] > 0 and model.bundle.dataset["ref_id"] == reference_arch(LM).id
    model = models[1]
    _as_if_on(model, monkeypatch)  # whatever this CPU is, time the reference as if it were the measured one
    archs = [LM.sample(i) for i in range(5)]
    before = model.predict(archs)[0]
    found = calibrate(model, rounds=3, bursts=2, gap_s=0.0)
    assert 0.05 < found["scale"] < 50 and found["reference_now_s"] > 0  # loose: a loaded machine is slow
    assert np.allclose(model.predict(archs)[0], before * found["scale"])
    assert "rescaled to this machine's speed now" in model.describe()


def test_what_fits_is_judged_on_todays_scale(monkeypatch, tmp_path) -> None:
    """On the measured device the plan times the reference arch before it decides whether the budget
    is reachable: a machine faster than its dataset's scale runs archs that scale calls too slow."""
    hw = load_hardware("epyc-2vcpu")
    model = latency_model(hw, LM, LM.workload)
    _as_if_on(model, monkeypatch)
    smallest = LM.restricted(hw.precisions).smallest()
    dataset_bound = float(model.bound([smallest], 0.9)[0])
    plan = api.plan_search(hw, "10s", iterations=1, out=tmp_path / "run")
    found = plan.model.calibration
    assert found and found["scale"] > 0  # timed now, at plan time
    assert plan.bound([smallest])[0] == pytest.approx(dataset_bound * found["scale"])
    outcome = api.run_planned_search(plan, progress=False, evaluate=lambda archs: [1.0] * len(archs))
    assert outcome.record.calibration == found  # a supernet already trained: no second timing
    too_tight = f"{dataset_bound * found['scale'] * 0.2 * 1e3:.3f}ms"
    with pytest.raises(UserError, match="is predicted within"):
        api.plan_search(hw, too_tight, iterations=1, out=tmp_path / "run2")
