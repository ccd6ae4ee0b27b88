"""Linformer: keys and values projected along the sequence to `proj_len` rows (not causal)."""
from __future__ import annotations

from space.attention.base import AttentionType, register


@register
class Linformer(AttentionType):
    name, causal, param = "linformer", False, "proj_len"
    summary = "Linformer low-rank K/V along the sequence, O(n k d)"

    def extra_shapes(self, heads, head_dim, max_len, param):
        return {"E": (param, max_len), "F": (param, max_len)}  # project keys and values along the sequence

    def mixing(self, layer, head_dim, start, q, causal):
        k, h, kvw = layer.proj_len, layer.heads, layer.kv_heads * head_dim
        total = start + q
        return 2 * 2 * k * total * kvw + 4 * q * k * h * head_dim + 5 * q * k * h, 2 * k * kvw + 2 * q * k * h

    def ops(self, layer, q, mode, causal):
        return 5

    def kernels(self, layer, head_dim, start, q, mode, causal):
        k, total = layer.proj_len, start + q
        return [("gemm", layer.kv_heads * k, head_dim, total)] * 2 + [
            ("attn", q, k, layer.heads, layer.kv_heads, 0, 1)]  # keys and values projected, then softmax over them
