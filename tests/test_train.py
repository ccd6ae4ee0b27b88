"""Supernet training: the loss falls; a killed run resumes to the same weights; bad settings."""
from __future__ import annotations

import pytest
import torch

from space.errors import UserError
from supernet.checkpoint import load_supernet
from supernet.evaluate import Evaluator
from supernet.train import TrainConfig, train_supernet


class Counting:
    """Learnable toy data: each row counts upward mod 11 from a random start."""

    def sample(self, batch: int, generator: torch.Generator):
        start = torch.randint(0, 11, (batch, 1), generator=generator)
        seq = (start + torch.arange(25)) % 11
        return seq[:, :-1], seq[:, 1:]


VAL = [Counting().sample(8, torch.Generator().manual_seed(99))]


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"steps": 40, "batch_size": 8, "seq_len": 24, "lr": 1e-2, "warmup": 5, "eval_every": 20,
                          "ckpt_every": 10, **kw})


@pytest.mark.parametrize("sampling", ["sandwich", "uniform"])
def test_loss_falls(tmp_path, sampling, tiny_spaces) -> None:
    space = tiny_spaces["decoder"]
    st = train_supernet(space, Counting(), VAL, tmp_path, cfg(sampling=sampling), {"data": None})
    first, last = st.log[0], st.log[-1]
    model, _ = load_supernet(tmp_path)
    ev = Evaluator(model, VAL)
    assert ev.loss(space.largest()) < 1.0  # chance is ln(11) = 2.4
    assert last["val_largest"] <= first["val_largest"]
    assert ev.loss(space.smallest()) < 1.5
    assert (tmp_path / "log.csv").read_text().startswith("step,loss,lr,tokens_per_s,val_largest,val_smallest")


def test_killed_run_resumes_to_the_same_weights(tmp_path, tiny_spaces) -> None:
    space = tiny_spaces["decoder"]
    straight = train_supernet(space, Counting(), VAL, tmp_path / "a", cfg(steps=20), {"data": None})

    class Killed(Exception):
        pass

    def kill_at_13(total, row):
        if row["step"] == 13:
            raise Killed
    with pytest.raises(Killed):
        train_supernet(space, Counting(), VAL, tmp_path / "b", cfg(steps=20), {"data": None}, progress=kill_at_13)
    _, record = load_supernet(tmp_path / "b")
    assert record.step == 10  # the last checkpoint survives; at most one interval is lost
    resumed = train_supernet(space, Counting(), VAL, tmp_path / "b", cfg(steps=20), {"data": None})
    assert resumed.step == 20
    for (n, p), (_, q) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(p, q), n


def test_other_settings_in_run_folder_refused(tmp_path, tiny_spaces) -> None:
    space = tiny_spaces["decoder"]
    train_supernet(space, Counting(), VAL, tmp_path, cfg(steps=10), {"data": None})
    with pytest.raises(UserError, match="other settings"):
        train_supernet(space, Counting(), VAL, tmp_path, cfg(steps=10, lr=0.5), {"data": None})


def test_config_errors() -> None:
    with pytest.raises(UserError, match="--sampling 'random'"):
        TrainConfig(sampling="random")
    with pytest.raises(UserError, match="--steps=0"):
        TrainConfig(steps=0)
    with pytest.raises(UserError, match="no trained supernet"):
        load_supernet("/nonexistent/folder")


def test_type_adapters_train_and_load(tmp_path, tiny_spaces) -> None:
    """A supernet trained with type adapters moves them, records the setting, and loads back with them."""
    space = tiny_spaces["decoder"]
    st = train_supernet(space, Counting(), VAL, tmp_path, cfg(steps=12, type_adapters=True), {"data": None})
    moved = [n for n, p in st.model.named_parameters() if "linear_adapter" in n and p.abs().sum() > 0]
    assert moved
    model, record = load_supernet(tmp_path)
    assert record.train.type_adapters and model.adapters
    for n, p in st.model.state_dict().items():
        assert torch.equal(p, model.state_dict()[n]), n


def test_warm_start_takes_the_tensors_that_fit(tmp_path, tiny_spaces) -> None:
    """init_from: a supernet of a smaller space seeds the tensors of the same name and shape; a bigger
    table (here positions, when max_len differs) keeps its initialisation; the record names the source."""
    from conftest import tiny_space
    short = tiny_spaces["decoder"]
    train_supernet(short, Counting(), VAL, tmp_path / "short", cfg(steps=10), {"data": None})
    source, _ = load_supernet(tmp_path / "short")
    longer = tiny_space("decoder", max_len=128)
    st = train_supernet(longer, Counting(), VAL, tmp_path / "long", cfg(steps=1, lr=1e-9, warmup=0,
                                                                             init_from=str(tmp_path / "short")),
                        {"data": None})
    src, dst = source.state_dict(), st.model.state_dict()
    same = [k for k in dst if k in src and src[k].shape == dst[k].shape]
    assert len(same) >= len(dst) - 1
    for k in same:  # one step at lr 1e-9: the copied weights are still the source's
        assert torch.allclose(src[k], dst[k], atol=1e-6), k
    from supernet.model import SuperTransformer
    fresh = Evaluator(SuperTransformer(longer, seed=0), VAL).loss(longer.largest())
    assert Evaluator(st.model, VAL).loss(longer.largest()) < fresh - 0.3  # it starts nearer where the short one ended
    _, record = load_supernet(tmp_path / "long")
    assert record.train.init_from == str(tmp_path / "short")
    from supernet.train import warm_start
    fresh_model = SuperTransformer(longer, seed=0)
    before = {k: v.clone() for k, v in fresh_model.state_dict().items()}
    taken, left = warm_start(fresh_model, tmp_path / "short")
    assert left == ["decoder.pos.weight"] and len(taken) == len(before) - 1  # only the longer table stays
    assert torch.equal(fresh_model.state_dict()["decoder.pos.weight"], before["decoder.pos.weight"])


def test_warm_start_refuses_another_task(tmp_path, tiny_trained) -> None:
    from nas import api
    with pytest.raises(UserError, match="--init-from .*no supernet there"):
        api.plan_training(tiny_trained / "tiny.yaml", out=tmp_path / "x", data=tiny_trained / "corpus", seq_len=32,
                          init_from=str(tmp_path / "nothing"))
    with pytest.raises(UserError, match="trains a translation"):
        api.plan_training(tiny_trained / "tt.yaml", out=tmp_path / "y", init_from=str(tiny_trained / "sn"))
