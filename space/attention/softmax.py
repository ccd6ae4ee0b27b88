"""Full softmax attention: every query scores every key it may see."""
from __future__ import annotations

from space.attention.base import AttentionType, register


def pairs_seen(start: int, q: int, total: int, causal: bool) -> int:
    """(query, key) pairs scored for q new queries at positions start..start+q-1 of `total`."""
    if causal:
        return q * start + q * (q + 1) // 2
    return q * total


def softmax_cost(pairs: int, heads: int, head_dim: int, kv_width: int, cached: int) -> tuple[int, int]:
    """QK^T, softmax and AV over `pairs`; the scores written and read, `cached` keys and values read."""
    return 4 * pairs * heads * head_dim + 5 * pairs * heads, 2 * pairs * heads + 2 * cached * kv_width


@register
class Softmax(AttentionType):
    name, causal, param = "softmax", True, None
    summary = "full softmax attention, O(n^2 d)"
    token_major = True  # fused scaled_dot_product_attention
    rope = True

    def mixing(self, layer, head_dim, start, q, causal):
        total = start + q
        return softmax_cost(pairs_seen(start, q, total, causal), layer.heads, head_dim,
                            layer.kv_heads * head_dim, total)

    def ops(self, layer, q, mode, causal):
        return {"forward": 1, "prefill": 1, "first": 1, "decode": 3}[mode]  # prefill: the fused causal kernel, no mask

    def kernels(self, layer, head_dim, start, q, mode, causal):
        total, kvw = start + q, layer.kv_heads * head_dim
        out = []
        if mode == "decode":  # the cache grows by concatenation: its keys and values copied
            out += [("ew", 2 * total * kvw)] * 2
        return out + [("attn", q, total, layer.heads, layer.kv_heads, int(causal and q > 1), 1)]

    def kernel_values(self, layer, head_dim, t, causal):
        # causal without a mask: torch's fused (flash) kernel, scores a block at a time; else dense
        return 0 if causal else layer.heads * t * t

    def state_values(self, layer, head_dim, context):
        return 2 * layer.kv_heads * head_dim * context  # every key and value seen

    def train_values(self, layer, seq, batch):
        return 2 * layer.heads * seq * seq * batch
