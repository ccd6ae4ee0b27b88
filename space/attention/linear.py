"""Kernelized linear attention: a recurrent (head_dim x head_dim) state per K/V head."""
from __future__ import annotations

from space.attention.base import AttentionType, register

CHUNK = 64  # the causal kernel's chunk: exact within it, a carried state across chunks
_CHUNK_OPS = 22  # ops per chunk of the causal kernel


@register
class Linear(AttentionType):
    name, causal, param = "linear", True, None
    summary = "kernelized linear attention, O(n d^2); recurrent state"
    rope = True

    def rope_ops(self, layer, q, mode, causal):
        # the rotations, and per chunk of a causal pass the rotated scores (two slices, a transpose,
        # a product, tril) beside the plain ones
        return super().rope_ops(layer, q, mode, causal) + (5 * -(-q // CHUNK) if causal else 0)

    def mixing(self, layer, head_dim, start, q, causal):
        h, kv, hd = layer.heads, layer.kv_heads, head_dim
        flops = 2 * q * kv * hd * hd + 2 * q * h * hd * hd + 6 * q * h * hd  # state, readout, normaliser
        return flops, 2 * kv * hd * (hd + 1)  # the (running) state, read and written

    def kernel_values(self, layer, head_dim, t, causal):
        return layer.heads * min(t, CHUNK) ** 2 if causal else 0  # one chunk's masked products at a time

    def state_values(self, layer, head_dim, context):
        return layer.kv_heads * head_dim * (head_dim + 1)  # sum phi(k) v^T and sum phi(k), per K/V head

    def ops(self, layer, q, mode, causal):
        if not causal:
            return 17
        return (9 if mode == "decode" else 11) + _CHUNK_OPS * -(-q // CHUNK)
