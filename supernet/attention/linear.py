"""Kernelized linear attention (Katharopoulos et al. 2020): softmax(QK^T) replaced by
phi(Q) phi(K)^T with phi = elu + 1, so attention = phi(Q) (phi(K)^T V) costs O(n hd^2).
Causal: the same sums taken as prefixes, computed chunk by chunk (exact within a chunk, a carried
(hd x hd) state across chunks); decoding keeps only that constant-size state.

Grouped-query: the state phi(K)^T V belongs to a K/V head, and the heads//kv query heads of its
group all read the same one, so the state (and the work of building it) shrinks with kv_heads:
queries are shaped (B, kv, g, T, hd) against (B, kv, 1, ...) keys and states.

Rotary positions (RoFormer, Su et al. 2021, section 3.3): the feature-mapped queries and keys are
rotated in the numerator only, sum_j (R_i phi(q_i)) . (R_j phi(k_j)) v_j / sum_j phi(q_i) . phi(k_j), so
the normaliser stays positive; the state carries the rotated keys' sum of outer products beside the
plain keys' sum."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from space.attention.linear import CHUNK  # within a chunk a small (C x C) masked product; a state carries the rest
from supernet.attention.base import Kernel, register
from supernet.attention.rope import rotate

EPS = 1e-6


def phi(x: torch.Tensor) -> torch.Tensor:
    return F.elu(x) + 1.0


def _grouped(q: torch.Tensor, kv: int) -> torch.Tensor:
    """(B, h, T, hd) -> (B, kv, g, T, hd): the query heads of each K/V head together."""
    b, h, t, hd = q.shape
    return q.view(b, kv, h // kv, t, hd)


def mapped(q, k, v, rope=None):
    """(phi(q) grouped (B, kv, g, T, hd), phi(k) and v (B, kv, 1, T, hd), and with `rope` the rotated
    phi(q), phi(k); else None, None): what linear attention and its relatives read."""
    kv = k.shape[1]
    qg, kg = _grouped(phi(q), kv), phi(k)[:, :, None]
    qr, kr = (rotate(qg, rope), rotate(kg, rope)) if rope is not None else (None, None)
    return qg, kg, v[:, :, None], qr, kr


def causal_linear(q, k, v, s, z, qr=None, kr=None):
    """q (B, kv, g, T, hd), k (B, kv, 1, T, hd) phi-mapped; v (B, kv, 1, T, hd); state s
    (B, kv, 1, hd, hd), z (B, kv, 1, hd). Returns (out (B, kv, g, T, hd), s, z). With `qr`, `kr`
    (the rotated q and k), the numerator and the state `s` use them, the normaliser q and k."""
    rotated = qr is not None
    qr, kr = (qr, kr) if rotated else (q, k)
    outs = []
    for start in range(0, q.shape[3], CHUNK):
        cut = slice(start, start + CHUNK)
        qc, kc, vc = q[..., cut, :], k[..., cut, :], v[..., cut, :]
        rq, rk = (qr[..., cut, :], kr[..., cut, :]) if rotated else (qc, kc)
        scores = (qc @ kc.transpose(-1, -2)).tril()  # (B, kv, g, C, C): keys up to the query, in this chunk
        turned = (rq @ rk.transpose(-1, -2)).tril() if rotated else scores
        num = turned @ vc + rq @ s
        den = scores.sum(-1) + (qc * z[..., None, :]).sum(-1)
        outs.append(num / (den[..., None] + EPS))
        s = s + rk.transpose(-1, -2) @ vc
        z = z + kc.sum(-2)
    return torch.cat(outs, dim=3), s, z


@register
class Linear(Kernel):
    name = "linear"

    def attend(self, q, k, v, extra, layer, causal, keep=None, rope=None):
        b, h, t, hd = q.shape
        kv = k.shape[1]
        qg, kg, vg, qr, kr = mapped(q, k, v, rope)
        if causal:
            out, _, _ = causal_linear(qg, kg, vg, q.new_zeros(b, kv, 1, hd, hd), q.new_zeros(b, kv, 1, hd), qr, kr)
            return out.reshape(b, h, t, hd)
        if keep is not None:  # padding keys contribute nothing to the sums
            kg = kg * keep[:, None, None, :, None]
            kr = None if kr is None else kr * keep[:, None, None, :, None]
        s = (kg if kr is None else kr).transpose(-1, -2) @ vg  # (B, kv, 1, hd, hd): one state per K/V head
        z = kg.sum(-2)  # (B, kv, 1, hd)
        out = ((qg if qr is None else qr) @ s) / ((qg * z[..., None, :]).sum(-1, keepdim=True) + EPS)
        return out.reshape(b, h, t, hd)

    # Linear attention reads the shared Q/K through phi, a very different function of them from the
    # softmax that window and softmax share: with one set of Q/K weights for all three types, the
    # supernet tunes them for softmax, and a linear *first* layer (which must make local features
    # from raw embeddings) inherits weights far worse than it would learn alone (issue 20). The
    # adapter gives linear layers a per-head affine map of their own on the query and key heads,
    # q_h -> (I + A_h) q_h + a_h, zero at the start (decayed towards the identity), folded into the
    # q/k projections of the active weights: an extracted model computes exactly as before.
    def adapter_shapes(self, heads, kv_heads, head_dim):
        return {"q": (heads, head_dim, head_dim), "qb": (heads, head_dim),
                "k": (kv_heads, head_dim, head_dim), "kb": (kv_heads, head_dim)}

    def adapt(self, block, adapter, layer, head_dim):
        out = dict(block)
        for name, n in (("q", layer.heads), ("k", layer.kv_heads)):
            m, c = adapter[name][:n], adapter[f"{name}b"][:n]  # (n, hd, hd), (n, hd)
            w = block[f"{name}.weight"].view(n, head_dim, -1)  # (n, hd, d)
            b = block[f"{name}.bias"].view(n, head_dim)
            out[f"{name}.weight"] = (w + m @ w).reshape(n * head_dim, -1)
            out[f"{name}.bias"] = (b + (m @ b[..., None])[..., 0] + c).reshape(-1)
        return out

    def step(self, q, k, v, extra, layer, state, rope=None):
        b, h, t, hd = q.shape
        kv = k.shape[1]
        qg, kg, vg, qr, kr = mapped(q, k, v, rope)
        if state is None:
            state = {"s": q.new_zeros(b, kv, 1, hd, hd), "z": q.new_zeros(b, kv, 1, hd)}
        out, s, z = causal_linear(qg, kg, vg, state["s"], state["z"], qr, kr)
        return out.reshape(b, h, t, hd), {"s": s, "z": z}
