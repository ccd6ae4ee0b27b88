"""Inference memory (space/memory.py) against the tensors themselves: the stored weights' bytes at
every precision, and the decode state's bytes after a workload for every attention type that
decodes, grouped-query heads, rotary positions and encoder-decoders."""
from __future__ import annotations

import random

import pytest
import torch

from space import Arch, Layer, Stack, Workload
from space.memory import inference_memory, state_bytes, weight_bytes
from supernet.functional import Cache, tensor_bytes
from supernet.precision import to_storage
from supernet.subnet import SubTransformer
from tests.conftest import CAUSAL, tiny_space


def _cache_after(sub: SubTransformer, w: Workload, src_len: int = 0) -> Cache:
    g = torch.Generator().manual_seed(0)
    kw = {}
    if sub.arch.kind == "encoder-decoder":
        kw = {"src": torch.randint(0, 23, (w.batch, w.seq_len), generator=g), "src_keep": None}
        prompt = torch.randint(0, 23, (w.batch, 1), generator=g)
        steps = w.gen_tokens - 1
    else:
        prompt = torch.randint(0, 23, (w.batch, w.seq_len), generator=g)
        steps = w.gen_tokens
    cache = Cache()
    with torch.no_grad():
        sub(prompt, cache=cache, **kw)
        for _ in range(steps):
            sub(torch.randint(0, 23, (w.batch, 1), generator=g), cache=cache, **kw)
    return cache


@pytest.mark.parametrize("attn", CAUSAL + ["mixed"])
@pytest.mark.parametrize("kv", [1, 2, 4])
@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_state_estimate_is_the_cache_tensors_bytes(attn: str, kv: int, positions: str) -> None:
    kinds = ["softmax", "window", "linear"] if attn == "mixed" else [attn, attn]
    layers = tuple(Layer(t, 4, kv, 32, window=5 if t == "window" else None) for t in kinds)
    arch = Arch("decoder", 8, 23, 96, decoder=Stack(32, layers), positions=positions)
    for w in (Workload(1, 20, 9), Workload(2, 3, 2), Workload(1, 70, 1)):
        cache = _cache_after(SubTransformer(arch).reset_parameters(0).eval(), w)
        assert state_bytes(arch, w) == cache.state_bytes(), (w, attn, kv)


def test_state_estimate_for_encoder_decoders() -> None:
    space = tiny_space("encoder-decoder")
    rng = random.Random(0)
    for _ in range(6):
        arch = space.sample(rng)
        w = Workload(2, 7, 5)
        cache = _cache_after(SubTransformer(arch).reset_parameters(0).eval(), w)
        assert state_bytes(arch, w) == cache.state_bytes(), arch.id


@pytest.mark.parametrize("precision", ["fp32", "int8", "bf16", "fp16"])
@pytest.mark.parametrize("kind", ["decoder", "encoder", "encoder-decoder"])
def test_weight_estimate_is_the_stored_tensors_bytes(kind: str, precision: str) -> None:
    space = tiny_space(kind)
    rng = random.Random(1)
    for _ in range(4):
        arch = space.sample(rng).with_precision(precision)
        state = SubTransformer(arch).state_dict()
        assert weight_bytes(arch) == tensor_bytes(to_storage(state, precision)), arch.id


def test_memory_grows_with_context_as_each_type_keeps_its_state() -> None:
    def arch(attn: str, kv: int = 8) -> Arch:
        layer = Layer(attn, 8, kv, 1024, window=64 if attn == "window" else None)
        return Arch("decoder", 32, 259, 4096, decoder=Stack(256, (layer,) * 4), positions="rope")
    short, long = Workload(1, 64, 32), Workload(1, 2048, 32)
    soft = state_bytes(arch("softmax"), long)
    assert soft == 4 * 2 * 256 * 2080 * 4  # 4 layers, K and V, 8 heads of 32, 2,080 tokens, fp32: 17.0 MB
    assert state_bytes(arch("window"), long) == state_bytes(arch("window"), short)  # bounded
    assert state_bytes(arch("linear"), long) == state_bytes(arch("linear"), short) < soft / 100
    assert state_bytes(arch("softmax", kv=2), long) == soft // 4  # grouped-query heads shrink the cache
    m = inference_memory(arch("softmax"), long)
    assert m.total == m.weights + m.state + m.activations and m.to_dict()["total"] == m.total
    assert state_bytes(arch("softmax"), Workload(1, 64, 0)) == 0  # nothing decodes, nothing kept


@pytest.mark.parametrize("strategy", ["evolution", "random", "tpe"])
def test_a_search_with_a_memory_budget_never_answers_an_arch_over_it(strategy: str, tmp_path) -> None:
    from nas.search import run_search
    from nas.search.budget import MemoryBudget
    from nas.search.report import feasible
    from space import load_space
    space = load_space("lm-shakespeare")
    w = Workload(1, 128, 64)
    memory = lambda archs: [inference_memory(a, w).total for a in archs]  # noqa: E731
    sizes = sorted(memory([space.sample(i) for i in range(200)]))
    budget = MemoryBudget(sizes[len(sizes) // 4])  # a quarter of the drawn archs fit
    bigger_is_better = lambda archs: [1.0 / inference_memory(a, w).weights for a in archs]  # noqa: E731
    res = run_search(space, strategy, evaluate=bigger_is_better, latency=lambda archs: [1e-3] * len(archs),
                     budget_s=1.0, iterations=24, batch=8, run_dir=tmp_path / "run", seed=0,
                     options={"evolution": {"population": 8, "sample_size": 3}, "tpe": {"n_startup_trials": 5}}.get(strategy),
                     memory=memory, memory_budget=budget)
    assert all(t["memory_bytes"] <= budget.bytes for t in res.trials)
    assert res.best["memory_bytes"] <= budget.bytes
    assert memory([res.best_arch])[0] == res.best["memory_bytes"]
    least = min(t["memory_bytes"] for t in res.trials)
    assert feasible(res.trials, 1.0, MemoryBudget(least - 1)) == []  # the ranking applies the budget too
    assert len(feasible(res.trials, 1.0, MemoryBudget(least))) >= 1
    from nas.search import InfeasibleBudget
    with pytest.raises(InfeasibleBudget, match="raise --memory-budget"):
        run_search(space, strategy, evaluate=bigger_is_better, latency=lambda archs: [1e-3] * len(archs),
                   budget_s=1.0, iterations=8, batch=8, run_dir=tmp_path / "none", seed=0,
                   memory=memory, memory_budget=MemoryBudget(1000))


def test_memory_budgets_parse_as_users_write_them() -> None:
    from nas.search.budget import MemoryBudget, format_bytes
    from space.errors import UserError
    assert MemoryBudget.of("8MB").bytes == 8_000_000 and MemoryBudget.of("8MiB").bytes == 8 * 2**20
    assert MemoryBudget.of("1.5GB").bytes == 1_500_000_000 and str(MemoryBudget.of("512KiB")) == "512KiB"
    assert format_bytes(17_039_360) == "17 MB"
    for bad, words in (("8", "has no unit"), ("8 parsecs", "unknown unit"), ("-1MB", "at least one byte"), ("lots", "not a size")):
        with pytest.raises(UserError, match=words):
            MemoryBudget.of(bad)
