"""Retention (RetNet's decayed linear attention, supernet/attention/retention.py): linear attention's
state, memory and most of its work, plus the decay weights its kernel applies chunk by chunk. The op
counts are the kernel's, counted on the real dispatch (tests/test_attention_units.py checks them)."""
from __future__ import annotations

from space.attention.base import register
from space.attention.linear import _CHUNK_OPS, Linear, _chunks

BASE_OPS = 6  # the decays of the layer's K/V heads (arange, exp2, 1 - ., log, view)
SIZE_OPS = 21  # per distinct chunk size of a pass: its in-chunk weights, reads, writes and whole-chunk decay
CHUNK_OPS = 5  # per chunk, beyond linear attention's: the decay products
SINGLE_OPS = 5  # a chunk of one token (a decode step): g = exp(log g) and the four decayed products
NONCAUSAL_OPS = 29  # a bidirectional pass: two causal passes' set-up, flips, the diagonal counted once
KERNEL_BASE, KERNEL_SIZE, KERNEL_CHUNK, NONCAUSAL_KERNELS = 4, 15, 4, 8  # the same, as launched kernels


def _pass(q: int) -> tuple[int, int, int]:
    """(distinct chunk sizes above 1, chunks above 1, one-token chunks) of a pass over q tokens."""
    chunks = _chunks(q)
    big = [c for c in chunks if c > 1]
    return len(set(big)), len(big), len(chunks) - len(big)


@register
class Retention(Linear):
    name = "retention"
    summary = "linear attention with a fixed per-K/V-head decay (RetNet), O(n d^2); recurrent state"

    def ops(self, layer, q, mode, causal):
        sizes, big, single = _pass(q)
        if causal:
            return super().ops(layer, q, mode, causal) + BASE_OPS + SIZE_OPS * sizes + CHUNK_OPS * big + SINGLE_OPS * single
        per_pass = SIZE_OPS * sizes + (_CHUNK_OPS + CHUNK_OPS) * (big + single)
        return NONCAUSAL_OPS + 2 * per_pass

    def rope_ops(self, layer, q, mode, causal):
        chunks = len(_chunks(q))
        if causal:  # linear's rotated scores, without the mask of a one-token chunk
            return super().rope_ops(layer, q, mode, causal) - _pass(q)[2]
        return super().rope_ops(layer, q, mode, causal) + 2 + 10 * chunks  # both passes' rotated scores, two flips

    def kernels(self, layer, head_dim, start, q, mode, causal):
        # linear attention's, plus the decays (counted on the real dispatch, views left out):
        # KERNEL_BASE for the heads' decays, KERNEL_SIZE per distinct chunk size, KERNEL_CHUNK per chunk
        sizes, big, single = _pass(q)
        extra = KERNEL_BASE + KERNEL_SIZE * sizes + KERNEL_CHUNK * (big + single)
        h, hd = layer.heads, head_dim
        if not causal:  # two causal passes, one from each end, and the diagonal counted once
            out = super().kernels(layer, head_dim, start, q, mode, True) * 2
            return out + [("ew", 2 * q * h * hd)] * (2 * extra + NONCAUSAL_KERNELS)
        return super().kernels(layer, head_dim, start, q, mode, causal) + [("ew", 2 * q * h * hd)] * extra

    def rope_kernels(self, layer, head_dim, q, mode, causal):
        out = super().rope_kernels(layer, head_dim, q, mode, causal)
        return out[:-1] if causal and _pass(q)[2] else out  # a one-token chunk's rotated score needs no mask

    def mixing(self, layer, head_dim, start, q, causal):
        flops, values = super().mixing(layer, head_dim, start, q, True)
        return (flops + 4 * q * layer.heads * head_dim) * (1 if causal else 2), values
