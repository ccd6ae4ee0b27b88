"""Kernelized linear attention: a recurrent (head_dim x head_dim) state per K/V head."""
from __future__ import annotations

from space.attention.base import AttentionType, register

CHUNK = 64  # the causal kernel's chunk: exact within it, a carried state across chunks
_CHUNK_OPS = 22  # ops per chunk of the causal kernel


def _chunks(q: int) -> list[int]:
    return [min(CHUNK, q - s) for s in range(0, q, CHUNK)]


@register
class Linear(AttentionType):
    name, causal, param = "linear", True, None
    summary = "kernelized linear attention, O(n d^2); recurrent state"
    rope = True

    def rope_ops(self, layer, q, mode, causal):
        # the rotations, and per chunk of a causal pass the rotated scores (two slices, a transpose,
        # a product, tril) beside the plain ones
        return super().rope_ops(layer, q, mode, causal) + (5 * -(-q // CHUNK) if causal else 0)

    def rope_kernels(self, layer, head_dim, q, mode, causal):
        out = super().rope_kernels(layer, head_dim, q, mode, causal)
        if causal:  # per chunk, the rotated scores beside the plain ones
            for c in _chunks(q):
                out += [("gemm", layer.heads * c, c, head_dim), ("ew", 2 * layer.heads * c * c)]
        return out

    def kernels(self, layer, head_dim, start, q, mode, causal):
        h, kv, hd = layer.heads, layer.kv_heads, head_dim
        out = [("ew", 2 * q * h * hd), ("ew", 2 * q * h * hd), ("ew", 2 * q * kv * hd), ("ew", 2 * q * kv * hd)]  # phi
        if not causal:
            return out + [("gemm", kv * hd, hd, q), ("ew", q * kv * hd), ("gemm", h * q, hd, hd),
                          ("ew", 3 * q * h * hd), ("ew", q * h * hd), ("ew", 2 * q * h), ("ew", 3 * q * h * hd)]
        if mode in ("prefill", "forward", "first"):
            out += [("ew", kv * hd * hd), ("ew", kv * hd)]  # the empty state
        for c in _chunks(q):
            out += [("gemm", h * c, c, hd), ("ew", 2 * h * c * c),  # scores within the chunk, masked
                    ("gemm", h * c, hd, c), ("gemm", h * c, hd, hd), ("ew", 3 * h * c * hd),  # numerator
                    ("ew", h * c * c), ("ew", 2 * h * c * hd), ("ew", h * c * hd), ("ew", 3 * h * c),  # normaliser
                    ("ew", 2 * h * c), ("ew", 3 * h * c * hd),  # the quotient
                    ("gemm", kv * hd, hd, c), ("ew", 3 * kv * hd * hd), ("ew", kv * c * hd), ("ew", 3 * kv * hd)]
        return out + [("ew", 2 * q * h * hd)]  # the chunks concatenated

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
