"""Linformer (Wang et al. 2020): keys and values are projected along the sequence to `proj_len`
rows by learnt E, F (proj_len x max_len, shared by the heads), then full softmax attention over
those rows: O(n k d). Mixing positions makes it non-causal only."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from supernet.attention.base import Kernel, register


@register
class Linformer(Kernel):
    name = "linformer"

    def slice_extra(self, extra, layer):
        return {"E": extra["E"][:layer.proj_len], "F": extra["F"][:layer.proj_len]}

    def init_extra(self, extra, generator=None):
        for p in extra.values():
            with torch.no_grad():
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[0]), generator=generator)

    def attend(self, q, k, v, extra, layer, causal, keep=None):
        if causal:
            raise ValueError("linformer attention cannot run in a causal stack")
        n = k.shape[2]
        if keep is not None:  # padding positions are left out of the projection
            k, v = k * keep[:, None, :, None], v * keep[:, None, :, None]
        kp = torch.einsum("kn,bhnd->bhkd", extra["E"][:, :n], k)  # (B, kv, proj_len, hd)
        vp = torch.einsum("kn,bhnd->bhkd", extra["F"][:, :n], v)
        return F.scaled_dot_product_attention(q, kp, vp, enable_gqa=True)

