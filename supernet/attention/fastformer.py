"""Fastformer additive attention (Wu et al. 2021), O(n d): each head pools its queries into one
global query with learnt scores, mixes it into the keys, pools those into one global key, and
modulates the values with it; each such key-value interaction goes through the paper's linear
output transform (one hd x hd matrix per head, initialised to the identity), and the query is
added back (the paper's residual). Non-causal only."""
from __future__ import annotations

import math

import torch

from supernet.attention.base import Kernel, expand_kv, register


def _pool(x: torch.Tensor, w: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """softmax over positions of x . w / sqrt(hd), then the weighted sum: (B, h, T, hd) -> (B, h, hd)."""
    scores = torch.einsum("bhtd,hd->bht", x, w) / math.sqrt(x.shape[-1])
    if keep is not None:
        scores = scores.masked_fill(~keep[:, None, :], float("-inf"))
    return torch.einsum("bht,bhtd->bhd", scores.softmax(-1), x)


@register
class Fastformer(Kernel):
    name = "fastformer"

    def slice_extra(self, extra, layer):
        return {n: extra[n][:layer.heads] for n in ("wq", "wk", "wt")}

    def init_extra(self, extra, generator=None):
        with torch.no_grad():
            for name in ("wq", "wk"):
                extra[name].normal_(0.0, 0.02, generator=generator)
            eye = torch.eye(extra["wt"].shape[-1])
            extra["wt"].copy_(eye.expand_as(extra["wt"]) + 0.02 * torch.randn(extra["wt"].shape, generator=generator))

    def attend(self, q, k, v, extra, layer, causal, keep=None):
        if causal:
            raise ValueError("fastformer attention cannot run in a causal stack")
        h = q.shape[1]
        k, v = expand_kv(k, h), expand_kv(v, h)
        gq = _pool(q, extra["wq"], keep)  # (B, h, hd): the global query
        p = gq[:, :, None, :] * k  # keys that have seen the global query
        gk = _pool(p, extra["wk"], keep)  # (B, h, hd): the global key
        u = gk[:, :, None, :] * v  # key-value interactions
        return torch.einsum("bhtd,hde->bhte", u, extra["wt"]) + q  # the output transform, then the residual

