"""A new attention type is two definitions: a torch-free unit (what the space and the cost model know)
and a kernel (its math). This module declares a toy one, prefix-mean attention (each query reads
the mean of the values up to it: no scores at all), in this file alone, and sees it sampled, costed
(parameters and tensor ops against the real dispatch), decoded with a cache, trained, exported
(a standalone model and ONNX) and searched. It is registered for these tests only."""
from __future__ import annotations

import pytest
import torch

from space.attention import ATTENTION_TYPES, AttentionType, register as register_unit, unregister as drop_unit
from space.attention.base import grouped_ops
from supernet.attention import Kernel, expand_kv, register as register_kernel, unregister as drop_kernel
from space import space_from_dict
from tests.test_cost import Dispatches
from tests import test_supernet
from tests.test_train import VAL, Counting


class PrefixMean(AttentionType):
    name, causal, param = "prefix-mean", True, None
    summary = "the mean of the values so far, O(n d); a running sum as its state"

    def mixing(self, layer, head_dim, start, q, causal):
        return 2 * q * layer.heads * head_dim, 2 * q * layer.kv_heads * head_dim

    def ops(self, layer, q, mode, causal):  # counted on the real dispatch, as the built-in types'
        g = grouped_ops(layer) // 2  # expanding grouped K/V heads: one more op per expansion
        if not causal:
            return 2 + g
        return {"forward": 4 + g, "prefill": 5 + g, "first": 5 + g, "decode": 6 + g}[mode]


class PrefixMeanKernel(Kernel):
    name = "prefix-mean"

    def attend(self, q, k, v, extra, layer, causal, keep=None):
        v = expand_kv(v, q.shape[1])
        if causal:
            return v.cumsum(2) / torch.arange(1, v.shape[2] + 1, device=v.device, dtype=v.dtype)[:, None]
        if keep is not None:
            w = keep[:, None, :, None].to(v.dtype)
            return ((v * w).sum(2, keepdim=True) / w.sum(2, keepdim=True)).expand(-1, -1, q.shape[2], -1)
        return v.mean(2, keepdim=True).expand(-1, -1, q.shape[2], -1)

    def step(self, q, k, v, extra, layer, state):
        c = v.cumsum(2)
        if state is not None:
            c = c + state["sum"]
        seen = 0 if state is None else state["seen"]
        out = c / torch.arange(seen + 1, seen + v.shape[2] + 1, device=v.device, dtype=v.dtype)[:, None]
        return expand_kv(out, q.shape[1]), {"sum": c[:, :, -1:], "seen": seen + v.shape[2]}


@pytest.fixture(scope="module")
def toy():
    register_unit(PrefixMean)
    register_kernel(PrefixMeanKernel)
    space = space_from_dict({"name": "tiny-toy", "kind": "decoder", "head_dim": 8, "vocab_size": 23, "max_len": 96,
                             "workload": {"batch": 1, "seq_len": 16, "gen_tokens": 8},
                             "decoder": {"embed": [16, 32], "depth": [1, 2], "heads": [2, 4], "kv_heads": [1, 2, 4],
                                         "ffn_ratio": [1, 2], "attention": {"softmax": {}, "prefix-mean": {}}}})
    yield space
    drop_kernel("prefix-mean")
    drop_unit("prefix-mean")
    assert "prefix-mean" not in ATTENTION_TYPES


def _with_toy(space, n=40):
    archs = [space.sample(i) for i in range(n)]
    return [a for a in archs if any(layer.attn == "prefix-mean" for layer in a.decoder.layers)]


def test_the_kernel_contract_holds(toy) -> None:
    contract = test_supernet.TestKernelContract()
    contract.test_shape_and_padding("prefix-mean")
    contract.test_incremental_equals_whole("prefix-mean")


def test_sampled_and_costed_as_it_runs(toy) -> None:
    from latency.runner import build
    from space import Workload, analytic_cost
    from supernet.subnet import SubTransformer
    archs = _with_toy(toy)
    assert len(archs) >= 10  # sampled as often as the other type
    for arch in archs[:6]:
        assert sum(p.numel() for p in SubTransformer(arch).parameters()) == analytic_cost(arch).params
        for w in (Workload(1, 16, 8), Workload(1, 20, 0), Workload(1, 9, 3)):
            run = build(arch, w)
            run()
            with Dispatches() as d:
                run()
            assert abs(analytic_cost(arch, w).ops / d.n - 1) < 0.03, (arch.id, w, analytic_cost(arch, w).ops, d.n)


def test_trained_decoded_exported_and_searched(toy, tmp_path) -> None:
    from nas.search import run_search
    from space import analytic_cost
    from supernet.checkpoint import load_supernet
    from supernet.evaluate import Evaluator
    from supernet.functional import Cache
    from supernet.onnx_export import export_onnx
    from supernet.subnet import extract, load, save
    from supernet.train import TrainConfig, train_supernet
    cfg = TrainConfig(steps=30, batch_size=8, seq_len=24, lr=1e-2, warmup=5, eval_every=30, ckpt_every=30)
    train_supernet(toy, Counting(), VAL, tmp_path / "sn", cfg, {"data": None})
    model, _ = load_supernet(tmp_path / "sn")
    ev = Evaluator(model, VAL)
    arch = _with_toy(toy)[0]
    assert ev.loss(arch) < 2.2  # chance is ln(11) = 2.4
    sub = extract(model, arch).eval()
    x = torch.randint(0, 11, (1, 30))
    with torch.no_grad():
        full, cache = sub(x), Cache()
        parts = [sub(x[:, :7], cache=cache)] + [sub(x[:, t:t + 1], cache=cache) for t in range(7, 30)]
        assert torch.allclose(full, torch.cat(parts, 1), atol=1e-5)
    again = load(save(sub, tmp_path / "model"))
    with torch.no_grad():
        assert torch.equal(again(x), full)
    assert export_onnx(sub, tmp_path / "onnx", length=16).max_abs_diff < 1e-4
    res = run_search(toy, "evolution", evaluate=ev.losses, latency=lambda archs: [analytic_cost(a).flops * 1e-9
                                                                                  for a in archs],
                     budget_s=1.0, iterations=16, batch=8, run_dir=tmp_path / "run", seed=0,
                     options={"population": 8, "sample_size": 3})
    assert len(res.trials) == 16 and res.best is not None
    assert any("prefix-mean" in t["arch"] for t in res.trials)


def test_predictors_fitted_before_a_type_existed_still_load_and_predict_alike() -> None:
    """A registered type adds feature columns (its indicator per layer, its count); a bundle fitted
    before it reads its own columns and predicts exactly as it did."""
    from pathlib import Path
    from latency.bundle import load_bundle
    from space import load_space
    path = Path(__file__).resolve().parents[1] / "configs/measured/xeon-2vcpu/predictor-lm-shakespeare-b1-n64-g32.pt"
    archs = [load_space("lm-shakespeare").sample(i) for i in range(20)]
    before = load_bundle(path).predict(archs)

    class Later(PrefixMean):  # not the module's toy, which other tests hold registered
        name = "later-type"
    register_unit(Later)
    try:
        bundle = load_bundle(path)
        assert bundle.columns is not None and len(bundle.columns) == len(bundle.feature_names)
        after = bundle.predict(archs)
    finally:
        drop_unit("later-type")
    assert (before[0] == after[0]).all() and (before[1] == after[1]).all()
