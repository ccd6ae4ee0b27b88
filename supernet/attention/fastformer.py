"""Fastformer additive attention (Wu et al. 2021), O(n d): each head pools its queries into one
global query with learnt scores, mixes it into the keys, pools those into one global key, and
modulates the values with it; the query is added back (the paper's residual). Non-causal only."""
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

    def extra_shapes(self, heads, head_dim, max_len, param):
        return {"wq": (heads, head_dim), "wk": (heads, head_dim)}

    def slice_extra(self, extra, layer):
        return {"wq": extra["wq"][:layer.heads], "wk": extra["wk"][:layer.heads]}

    def init_extra(self, extra, generator=None):
        for p in extra.values():
            with torch.no_grad():
                p.normal_(0.0, 0.02, generator=generator)

    def attend(self, q, k, v, extra, layer, causal, keep=None):
        if causal:
            raise ValueError("fastformer attention cannot run in a causal stack")
        h = q.shape[1]
        k, v = expand_kv(k, h), expand_kv(v, h)
        gq = _pool(q, extra["wq"], keep)  # (B, h, hd): the global query
        p = gq[:, :, None, :] * k  # keys that have seen the global query
        gk = _pool(p, extra["wk"], keep)  # (B, h, hd): the global key
        return gk[:, :, None, :] * v + q

