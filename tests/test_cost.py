"""Attention costs what the cost model says it costs: the sliding window in blocks (O(n w), exactly
the masked reference), grouped-query linear attention with one state per K/V head, Fastformer's
output transform, and the analytic count of dispatched ops against a real count."""
from __future__ import annotations

import itertools
import random
import zlib

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from latency.runner import build
from space import Arch, Layer, Stack, Workload, analytic_cost, load_space
from supernet.attention import get_kernel
from supernet.attention.softmax import positions_mask
from supernet.attention.window import banded


class Dispatches(TorchDispatchMode):
    """Counts the aten ops dispatched, and the largest tensor any of them made."""

    def __init__(self) -> None:
        super().__init__()
        self.n, self.largest = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.n += 1
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def dense_window(q, k, v, w: int, causal: bool, keep=None):
    t = q.shape[2]
    if causal:
        mask = positions_mask(0, t, 0, t, w, q.device)
    else:
        pos = torch.arange(t)
        mask = (pos[:, None] - pos[None, :]).abs() <= w // 2
    mask = mask[None, None]
    if keep is not None:
        mask = (mask & keep[:, None, None, :]) | torch.eye(t, dtype=torch.bool)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


@pytest.mark.parametrize("causal", [True, False])
def test_window_blocks_equal_the_masked_reference(causal: bool) -> None:
    g = torch.Generator().manual_seed(0)
    for t, w, padded in itertools.product([1, 7, 16, 33, 64, 100, 257], [1, 2, 5, 16, 32, 64], [False, True]):
        q, k, v = (torch.randn(2, 3, t, 8, generator=g) for _ in range(3))
        keep = None
        if padded:
            keep = torch.ones(2, t, dtype=torch.bool)
            keep[1, (2 * t) // 3:] = False
        want = dense_window(q, k, v, w, causal, keep)
        assert torch.allclose(banded(q, k, v, w, causal, keep), want, atol=1e-5), (t, w, padded)


def test_window_blocks_are_causal_and_linear_in_memory() -> None:
    t, w = 2048, 32
    q, k, v = (torch.randn(1, 2, t, 8) for _ in range(3))
    with Dispatches() as d:
        out = banded(q, k, v, w, causal=True)
    assert d.largest < 4 * t * 2 * w * 2  # never a (T x T) score matrix: O(n w)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 1000:], v2[:, :, 1000:] = 0.0, 5.0  # change the future
    again = banded(q, k2, v2, w, causal=True)
    assert torch.equal(out[:, :, :1000], again[:, :, :1000]) and not torch.allclose(out[:, :, 1000:], again[:, :, 1000:])


def test_window_kernel_takes_blocks_past_two_blocks() -> None:
    kernel, layer = get_kernel("window"), Layer("window", 2, 2, 16, window=16)
    q, k, v = (torch.randn(1, 2, 300, 8) for _ in range(3))
    with Dispatches() as d:
        out = kernel.attend(q, k, v, {}, layer, causal=True)
    assert d.largest < 300 * 300 and torch.allclose(out, dense_window(q, k, v, 16, True), atol=1e-5)
    out_step, state = kernel.step(q, k, v, {}, layer, None)  # a long prompt's prefill: blocked too
    assert torch.allclose(out_step, out, atol=1e-6) and state["k"].shape[2] == 15 and state["seen"] == 300


def test_linear_state_is_per_kv_head() -> None:
    kernel = get_kernel("linear")
    layer = Layer("linear", 8, 2, 16)
    q, k, v = torch.randn(1, 8, 10, 8), torch.randn(1, 2, 10, 8), torch.randn(1, 2, 10, 8)
    out, state = kernel.step(q, k, v, {}, layer, None)
    assert state["s"].shape == (1, 2, 1, 8, 8) and state["z"].shape == (1, 2, 1, 8)  # 4x smaller than per query head
    from supernet.attention.base import expand_kv
    reference = get_kernel("linear").attend(q, expand_kv(k, 8), expand_kv(v, 8), {}, Layer("linear", 8, 8, 16), True)
    assert torch.allclose(out, reference, atol=1e-5)  # the same attention as K/V expanded to every head


def test_fastformer_has_the_output_transform() -> None:
    from space.cost import attention_params
    kernel, layer = get_kernel("fastformer"), Layer("fastformer", 2, 2, 16)
    shapes = kernel.extra_shapes(2, 8, 32, None)
    assert shapes["wt"] == (2, 8, 8)
    extra = {n: torch.zeros(s) for n, s in shapes.items()}
    kernel.init_extra(extra, torch.Generator().manual_seed(0))
    q, k, v = (torch.randn(1, 2, 6, 8) for _ in range(3))
    base = kernel.attend(q, k, v, extra, layer, False)
    extra["wt"] = extra["wt"] * 2
    assert not torch.allclose(kernel.attend(q, k, v, extra, layer, False), base)  # the transform is used
    assert attention_params(layer, 16, 8, 32) - attention_params(Layer("softmax", 2, 2, 16), 16, 8, 32) == 2 * 16 + 2 * 64


SPACES = ["lm-shakespeare", "folio-translation"]
WORKLOADS = ["len=64,gen=32", "len=48,gen=8", "len=200,gen=0", "len=16,gen=1"]


@pytest.mark.parametrize("space_name, workload", list(itertools.product(SPACES, WORKLOADS)))
def test_analytic_op_count_matches_the_real_dispatch(space_name: str, workload: str) -> None:
    space = load_space(space_name)
    w = Workload.parse(workload, base=space.workload)
    rng = random.Random(zlib.crc32(workload.encode()))  # the same archs in every process (hash() is salted)
    # three drawn archs, and one of softmax layers only (whose prefill ops once changed unseen)
    for arch in [space.sample(rng) for _ in range(3)] + [space.with_attention(["softmax"]).sample(rng)]:
        run = build(arch, w)
        run()
        with Dispatches() as d:
            run()
        predicted = analytic_cost(arch, w).ops
        assert abs(predicted / d.n - 1) < 0.03, (arch.id, predicted, d.n)


def test_cost_model_counts_the_pairs_each_kernel_computes() -> None:
    from space.attention.softmax import pairs_seen
    from space.attention.window import window_pairs
    soft = pairs_seen(0, 1024, 1024, True)
    win = window_pairs(32, 0, 1024, 1024, True)
    assert soft == 1024 * 1025 // 2 and win == 32 * 32 * 63  # blocks of 32 queries against 63 keys: O(n w)
    assert window_pairs(32, 0, 64, 64, True) == 64 * 64  # two blocks or fewer: dense and masked
    assert window_pairs(32, 100, 1, 101, True) == 32  # a decode step reads the bounded cache
