"""Kernelized linear attention (Katharopoulos et al. 2020): softmax(QK^T) replaced by
phi(Q) phi(K)^T with phi = elu + 1, so attention = phi(Q) (phi(K)^T V) costs O(n hd^2).
Causal: the same sums taken as prefixes, computed chunk by chunk (exact within a chunk, a carried
(hd x hd) state across chunks); decoding keeps only that constant-size state."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from supernet.attention.base import Kernel, expand_kv, register

EPS = 1e-6
CHUNK = 64  # within-chunk work is a small (C x C) masked product; the state carries the rest


def phi(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1.0


def causal_linear(q, k, v, s, z):
    """q, k already phi-mapped (B, h, T, hd); state s (B, h, hd, hd), z (B, h, hd)."""
    outs = []
    for start in range(0, q.shape[2], CHUNK):
        qc, kc, vc = q[:, :, start:start + CHUNK], k[:, :, start:start + CHUNK], v[:, :, start:start + CHUNK]
        scores = (qc @ kc.transpose(-1, -2)).tril()  # (B, h, C, C): keys up to the query, in this chunk
        num = scores @ vc + qc @ s
        den = scores.sum(-1) + (qc * z[:, :, None, :]).sum(-1)
        outs.append(num / (den[..., None] + EPS))
        s = s + kc.transpose(-1, -2) @ vc
        z = z + kc.sum(2)
    return torch.cat(outs, dim=2), s, z


@register
class Linear(Kernel):
    name = "linear"

    def attend(self, q, k, v, extra, layer, causal, keep=None):
        h = q.shape[1]
        q, k, v = phi(q), phi(expand_kv(k, h)), expand_kv(v, h)
        if causal:
            b, _, _, hd = q.shape
            out, _, _ = causal_linear(q, k, v, q.new_zeros(b, h, hd, hd), q.new_zeros(b, h, hd))
            return out
        if keep is not None:  # padding keys contribute nothing to the sums
            k = k * keep[:, None, :, None]
        s = k.transpose(-1, -2) @ v  # (B, h, hd, hd)
        z = k.sum(2)  # (B, h, hd)
        return (q @ s) / ((q * z[:, :, None, :]).sum(-1, keepdim=True) + EPS)

    def step(self, q, k, v, extra, layer, state):
        h = q.shape[1]
        q, k, v = phi(q), phi(expand_kv(k, h)), expand_kv(v, h)
        if state is None:
            b, _, _, hd = q.shape
            state = {"s": q.new_zeros(b, h, hd, hd), "z": q.new_zeros(b, h, hd)}
        out, s, z = causal_linear(q, k, v, state["s"], state["z"])
        return out, {"s": s, "z": z}

