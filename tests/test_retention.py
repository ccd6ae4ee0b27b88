"""Retention (decayed linear attention) computes what its definition says: against a dense reference
with the decay matrix written out, causal (chunked, across chunk boundaries) and bidirectional (with
padding), with grouped K/V heads; and the decay does what it is for: far keys weigh less."""
from __future__ import annotations

import pytest
import torch

from space import Layer
from supernet.attention import get_kernel
from supernet.attention.linear import EPS, phi
from supernet.attention.retention import log_decay


def dense(q, k, v, causal: bool, keep=None):
    b, h, t, hd = q.shape
    kv = k.shape[1]
    g = log_decay(kv, q).view(kv).exp().repeat_interleave(h // kv)  # each query head its K/V head's decay
    pos = torch.arange(t, dtype=q.dtype)
    dist = pos[:, None] - pos[None, :]
    w = g[:, None, None] ** dist.abs()  # (h, t, t)
    if causal:
        w = w * (dist >= 0)
    if keep is not None:
        w = w * keep[:, None, None, :]
    kk, vv = (x.repeat_interleave(h // kv, dim=1) for x in (k, v))
    scores = (phi(q) @ phi(kk).transpose(-1, -2)) * w
    return (scores @ vv) / (scores.sum(-1, keepdim=True) + EPS)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("t", [1, 7, 64, 150])
def test_retention_equals_its_definition(causal: bool, t: int) -> None:
    g = torch.Generator().manual_seed(t)
    q, k, v = torch.randn(2, 4, t, 8, generator=g), torch.randn(2, 2, t, 8, generator=g), torch.randn(2, 2, t, 8, generator=g)
    keep = None
    if not causal and t > 1:
        keep = torch.ones(2, t, dtype=torch.bool)
        keep[1, (2 * t) // 3:] = False
    got = get_kernel("retention").attend(q, k, v, {}, Layer("retention", 4, 2, 16), causal, keep)
    want = dense(q, k, v, causal, keep)
    rows = slice(None) if keep is None else keep[:, None, :, None].expand_as(want)
    assert torch.allclose(got[rows], want[rows], atol=1e-5), (got - want).abs().max()


def test_decoding_carries_the_decayed_state() -> None:
    kernel, layer = get_kernel("retention"), Layer("retention", 4, 2, 16)
    q, k, v = (torch.randn(1, n, 100, 8) for n in (4, 2, 2))
    whole = kernel.attend(q, k, v, {}, layer, True)
    out, state = kernel.step(q[:, :, :70], k[:, :, :70], v[:, :, :70], {}, layer, None)
    parts = [out]
    for t in range(70, 100):
        out, state = kernel.step(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1], {}, layer, state)
        parts.append(out)
    assert torch.allclose(torch.cat(parts, 2), whole, atol=1e-5)


def test_far_keys_weigh_less_than_in_linear_attention() -> None:
    """Change the first 200 of 400 values: linear attention's last output moves, retention's first
    head (a memory of about 32 tokens) hardly at all."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, 400, 8, generator=g) for _ in range(3))
    v2 = v.clone()
    v2[:, :, :200] += 5.0
    layer = Layer("linear", 1, 1, 16)
    moved = {}
    for name in ("linear", "retention"):
        a = get_kernel(name).attend(q, k, v, {}, layer, True)[0, 0, -1]
        b = get_kernel(name).attend(q, k, v2, {}, layer, True)[0, 0, -1]
        moved[name] = (a - b).abs().max().item()
    assert moved["retention"] < 1e-2 < moved["linear"], moved
