"""Sliding-window softmax: each query sees its last `window` keys (a bounded decode cache)."""
from __future__ import annotations

from space.attention.base import AttentionType, grouped_ops, register
from space.attention.softmax import softmax_cost

WINDOW_MIN_BLOCK = 16  # the sliding-window kernel's query block: max(16, window)


def window_block(window: int) -> int:
    return max(WINDOW_MIN_BLOCK, window)


def window_blocked(t: int, window: int) -> bool:
    """Whether the kernel runs t queries in blocks (O(n w)) rather than dense and masked (O(n^2),
    cheaper for a sequence of at most two blocks). The kernel asks this too."""
    return t > 2 * window_block(window)


def window_pairs(window: int, start: int, q: int, total: int, causal: bool) -> int:
    """(query, key) pairs the kernel scores, masked ones included."""
    if q == 1 and causal:  # a decode step over the bounded cache
        return min(total, window)
    if start == 0 and window_blocked(q, window):  # blocks of c queries against c + reach keys
        c = window_block(window)
        reach = window - 1 if causal else 2 * (window // 2)
        return -(-q // c) * c * (c + reach)
    return q * total  # dense and masked


@register
class Window(AttentionType):
    name, causal, param = "window", True, "window"
    summary = "sliding-window softmax, O(n w d); bounded cache"
    token_major = True  # fused scaled_dot_product_attention
    rope = True

    def mixing(self, layer, head_dim, start, q, causal):
        total = start + q
        cached = min(total, layer.window) if causal else total
        return softmax_cost(window_pairs(layer.window, start, q, total, causal), layer.heads, head_dim,
                            layer.kv_heads * head_dim, cached)

    def ops(self, layer, q, mode, causal):
        if mode in ("first", "decode"):  # the cache kept to its last window - 1 keys: two slices
            return 3 if mode == "first" else 5
        if window_blocked(q, layer.window):
            return (39 if causal else 38) + grouped_ops(layer) + (2 if mode == "prefill" else 0)
        return (9 if causal else 8) + (2 if mode == "prefill" else 0)

    def kernels(self, layer, head_dim, start, q, mode, causal):
        total, kvw, qw, w = start + q, layer.kv_heads * head_dim, layer.heads * head_dim, layer.window
        if mode in ("first", "decode"):  # the bounded cache: concatenated, then cut to its last w - 1 keys
            cached = min(start, w - 1) + 1
            copies = [("ew", 2 * cached * kvw)] * 2 if mode == "decode" else []
            return copies + [("attn", 1, min(cached, w), layer.heads, layer.kv_heads, 0, 1)]
        if not window_blocked(q, w):  # dense and masked: the band built, every pair scored
            return [("ew", q)] * 2 + [("ew", q * q)] * 4 + [("attn", q, q, layer.heads, layer.kv_heads, 0, 1)]  # positions, band
        c = window_block(w)
        reach = w - 1 if causal else 2 * (w // 2)
        n, span = -(-q // c), c + reach
        out = [("ew", 4 * q * qw)] * (2 if layer.kv_heads != layer.heads else 0)  # K/V expanded to every head
        out += [("ew", 2 * (n * c + reach) * qw)] * 3  # K, V (and Q) padded
        out += [("ew", n * span)] * 3 + [("ew", n * c * span)] * 11  # positions, the band, the mask
        # the blocks laid out as a batch are views (strided slabs); the output comes back by a copy
        out += [("attn", c, span, layer.heads, layer.heads, 0, n), ("ew", 2 * n * c * qw)]
        return out

    def kernel_values(self, layer, head_dim, t, causal):
        scores = layer.heads * window_pairs(layer.window, 0, t, t, causal)  # its blocks' (or the dense) scores
        if not window_blocked(t, layer.window):
            return scores
        # the blocks as a batch: each block's slab of keys and values copied out (c + reach rows per c
        # queries), and the queries and the output reshaped
        qw = layer.heads * head_dim
        return scores + 2 * (window_pairs(layer.window, 0, t, t, causal) // window_block(layer.window)) * qw + 2 * t * qw

    def state_values(self, layer, head_dim, context):
        return 2 * layer.kv_heads * head_dim * min(context, layer.window - 1)  # the next query's keys only

    def train_values(self, layer, seq, batch):
        return 2 * layer.heads * seq * min(seq, layer.window) * batch
