"""Retention (RetNet, Sun et al. 2023): kernelized linear attention whose sums decay with distance,
out_i = sum_j g^(i-j) phi(q_i).phi(k_j) v_j / sum_j g^(i-j) phi(q_i).phi(k_j), with one fixed decay g
per K/V head, g_h = 1 - 2^-(5+h) (head 0 remembers about 32 tokens, head 7 about 4,096). Plain
linear attention weighs every earlier token alike, so at long context its normaliser drowns the
neighbours (docs/benchmarks.md, *Long context*: 2.47 nats/byte, a byte-bigram's level); the decay
lets its first heads see locally, the last ones far. Same state as linear attention, decayed:
s_t = g s_(t-1) + phi(k_t) v_t^T, z_t = g z_(t-1) + phi(k_t); computed chunk by chunk as linear's.

Bidirectional (an encoder): g^|i-j|, as a causal pass each way with the diagonal counted once.
Rotary positions enter the numerator only, as in linear attention."""
from __future__ import annotations

import torch

from space.attention.linear import CHUNK
from supernet.attention.base import register
from supernet.attention.linear import EPS, Linear, mapped


def log_decay(kv: int, like: torch.Tensor) -> torch.Tensor:
    """(1, kv, 1, 1, 1): log g per K/V head (the first `kv` of the fixed sequence: elastic heads agree)."""
    g = 1.0 - torch.exp2(-5.0 - torch.arange(kv, device=like.device, dtype=like.dtype))
    return g.log().view(1, kv, 1, 1, 1)


def _chunk_decays(lg: torch.Tensor, c: int) -> tuple[torch.Tensor, ...]:
    """For a chunk of c: the in-chunk weights g^(i-j) (j <= i), g^(i+1) on the carried state, g^(c-1-j)
    on each key's contribution to the next state, and g^c on the state itself."""
    pos = torch.arange(c, device=lg.device, dtype=lg.dtype)
    inner = torch.exp(lg * (pos[:, None] - pos[None, :])).tril()  # (1, kv, 1, c, c)
    reads = torch.exp(lg[..., 0] * (pos + 1))[..., None]  # (1, kv, 1, c, 1)
    writes = torch.exp(lg[..., 0] * (c - 1 - pos))[..., None]  # (1, kv, 1, c, 1)
    return inner, reads, writes, torch.exp(lg * c)  # ..., (1, kv, 1, 1, 1)


def causal_retention(q, k, v, s, z, lg, qr=None, kr=None, divide=True):
    """As supernet.attention.linear.causal_linear, with the sums decayed by g^(distance). Returns
    (out, s, z), or with divide=False (numerator, denominator, s, z)."""
    rotated = qr is not None
    qr, kr = (qr, kr) if rotated else (q, k)
    nums, dens, decays = [], [], {}
    for start in range(0, q.shape[3], CHUNK):
        cut = slice(start, start + CHUNK)
        qc, kc, vc = q[..., cut, :], k[..., cut, :], v[..., cut, :]
        rq, rk = (qr[..., cut, :], kr[..., cut, :]) if rotated else (qc, kc)
        c = qc.shape[3]
        if c == 1:  # a decode step: the state decays once, the new key enters undecayed
            g = decays[1] if 1 in decays else decays.setdefault(1, torch.exp(lg))
            scores = qc @ kc.transpose(-1, -2)
            turned = rq @ rk.transpose(-1, -2) if rotated else scores
            nums.append(turned @ vc + g * (rq @ s))
            dens.append(scores.sum(-1) + g[..., 0] * (qc * z[..., None, :]).sum(-1))
            s = g * s + rk.transpose(-1, -2) @ vc
            z = g[..., 0] * z + kc.sum(-2)
            continue
        if c not in decays:
            decays[c] = _chunk_decays(lg, c)
        inner, reads, writes, whole = decays[c]
        scores = (qc @ kc.transpose(-1, -2)) * inner
        turned = (rq @ rk.transpose(-1, -2)) * inner if rotated else scores
        nums.append(turned @ vc + reads * (rq @ s))
        dens.append(scores.sum(-1) + reads[..., 0] * (qc * z[..., None, :]).sum(-1))
        s = whole * s + (rk * writes).transpose(-1, -2) @ vc
        z = whole[..., 0] * z + (kc * writes).sum(-2)
    num, den = (nums[0], dens[0]) if len(nums) == 1 else (torch.cat(nums, dim=3), torch.cat(dens, dim=3))
    if not divide:
        return num, den, s, z
    return num / (den[..., None] + EPS), s, z


def _flip(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else x.flip(3)


@register
class Retention(Linear):
    name = "retention"

    def attend(self, q, k, v, extra, layer, causal, keep=None, rope=None):
        b, h, t, hd = q.shape
        kv = k.shape[1]
        qg, kg, vg, qr, kr = mapped(q, k, v, rope)
        lg = log_decay(kv, q)
        s0, z0 = q.new_zeros(b, kv, 1, hd, hd), q.new_zeros(b, kv, 1, hd)
        if causal:
            out, _, _ = causal_retention(qg, kg, vg, s0, z0, lg, qr, kr)
            return out.reshape(b, h, t, hd)
        if keep is not None:  # padding keys contribute nothing to the sums
            kg = kg * keep[:, None, None, :, None]
            kr = None if kr is None else kr * keep[:, None, None, :, None]
        num, den, _, _ = causal_retention(qg, kg, vg, s0, z0, lg, qr, kr, divide=False)
        bnum, bden, _, _ = causal_retention(_flip(qg), _flip(kg), _flip(vg), s0, z0, lg, _flip(qr), _flip(kr),
                                            divide=False)  # the same sums from the other end
        rq, rk = (qr, kr) if qr is not None else (qg, kg)
        num = num + bnum.flip(3) - (rq * rk).sum(-1, keepdim=True) * vg  # the diagonal, counted twice
        den = den + bden.flip(3) - (qg * kg).sum(-1)
        return (num / (den[..., None] + EPS)).reshape(b, h, t, hd)

    def step(self, q, k, v, extra, layer, state, rope=None):
        b, h, t, hd = q.shape
        kv = k.shape[1]
        qg, kg, vg, qr, kr = mapped(q, k, v, rope)
        if state is None:
            state = {"s": q.new_zeros(b, kv, 1, hd, hd), "z": q.new_zeros(b, kv, 1, hd)}
        out, s, z = causal_retention(qg, kg, vg, state["s"], state["z"], log_decay(kv, q), qr, kr)
        return out.reshape(b, h, t, hd), {"s": s, "z": z}
