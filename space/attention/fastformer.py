"""Fastformer: additive attention pooled into global query and key vectors (not causal)."""
from __future__ import annotations

from space.attention.base import AttentionType, grouped_ops, register


@register
class Fastformer(AttentionType):
    name, causal, param = "fastformer", False, None
    summary = "Fastformer additive attention, O(n d)"

    def extra_shapes(self, heads, head_dim, max_len, param):
        # the pooling vectors, and the output transform per head
        return {"wq": (heads, head_dim), "wk": (heads, head_dim), "wt": (heads, head_dim, head_dim)}

    def mixing(self, layer, head_dim, start, q, causal):
        h, hd = layer.heads, head_dim
        flops = 10 * q * h * hd + 2 * q * h * hd * hd  # pooling and mixing, then the output transform
        return flops, 3 * q * h * hd + h * hd * hd

    def ops(self, layer, q, mode, causal):
        return 14 + grouped_ops(layer)

    def kernels(self, layer, head_dim, start, q, mode, causal):
        h, hd = layer.heads, head_dim
        pool = [("gemm", h * q, 1, hd), ("ew", 2 * h * q), ("ew", 2 * h * q), ("gemm", h, hd, q)]  # scores, softmax, sum
        out = [("ew", 4 * q * h * hd)] * (2 if layer.kv_heads != h else 0)  # K/V expanded to every head
        out += pool + [("ew", 3 * q * h * hd)] + pool + [("ew", 3 * q * h * hd)]  # global query, keys, global key, u
        return out + [("gemm", h * q, hd, hd), ("ew", 3 * q * h * hd)]  # the output transform, the residual
