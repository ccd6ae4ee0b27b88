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
