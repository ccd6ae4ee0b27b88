"""The pre-trained supernet shipped inside the package: it loads, gives the validation losses it
recorded on a fixed batch, and the main job searches with it without training anything."""
from __future__ import annotations

import json

import pytest

from nas import api
from nas.api._supernet import shipped_supernet
from space import load_space
from supernet.checkpoint import load_supernet
from supernet.train import evaluate_loss

LM = load_space("lm-shakespeare")
LONG = load_space("lm-shakespeare-long")
# the validation loss (nats/byte) each was trained to, on its own windows (128 and 2,048 bytes)
TRAINED_TO = {"lm-shakespeare": 1.75, "lm-shakespeare-long": 1.56}


@pytest.fixture(scope="module")
def shipped():
    folder = shipped_supernet(LM)
    assert folder is not None, "configs/supernets/lm-shakespeare/ holds no supernet of today's lm-shakespeare space"
    return folder


@pytest.mark.parametrize("space", [LM, LONG], ids=lambda s: s.name)
def test_it_loads_and_gives_its_recorded_losses(space) -> None:
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from ship_supernet import check_batch
    folder = shipped_supernet(space)
    assert folder is not None, f"configs/supernets/{space.name}/ holds no supernet of today's {space.name} space"
    model, record = load_supernet(folder)
    check = json.loads((folder / "check.json").read_text())
    batch = check_batch(record)
    assert evaluate_loss(model, space.largest(), batch) == pytest.approx(check["largest"], abs=1e-4)
    assert evaluate_loss(model, space.smallest(), batch) == pytest.approx(check["smallest"], abs=1e-4)
    assert record.dtype == "float16" and record.finished
    assert record.log[-1]["val_largest"] <= TRAINED_TO[space.name]
    assert (folder / "supernet.safetensors").stat().st_size < 25 * 2**20


def test_a_long_context_search_plans_with_its_shipped_supernet(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    plan = api.plan_search("xeon-2vcpu", "400ms", space="lm-shakespeare-long", calibrate=False)
    assert plan.supernet.action == "use" and plan.supernet.folder == shipped_supernet(LONG)
    assert plan.workload.seq_len == 2048 and plan.workload.gen_tokens == 128


def test_the_main_job_uses_it_without_training(shipped, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no runs/ here: nothing of the user's
    plan = api.plan_search("a100", "20ms", iterations=8)
    assert plan.supernet.action == "use" and plan.supernet.folder == shipped
    run = api.search("a100", "20ms", iterations=8, eval_batches=1, hurdle_batches=1, final_batches=2, final_top=2,
                     options={"population": 4, "sample_size": 2}, progress=False)
    assert run.best is not None and run.record.supernet == str(shipped.resolve())
    assert not (tmp_path / "runs" / "supernet-lm-shakespeare").exists()  # nothing was trained
