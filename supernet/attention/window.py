"""Sliding-window softmax attention (Longformer's local window): a causal query sees its last
`window` positions, a non-causal one the `window // 2` on each side. Decoding keeps a bounded cache
of `window - 1` keys, so its memory and per-token cost stop growing with the context.

Over a whole sequence (training, evaluation, a prompt's prefill) the queries go in blocks of
`window` (at least 16): block i attends to the keys from (i * window - reach) to its own end, a
slab of at most 2 * window + reach keys cut from K and V with `unfold` (a view: no copy), so time
and memory are O(n * w), not O(n^2). A short sequence (no longer than two blocks) takes the dense
masked path instead, which is cheaper there; both equal the dense masked reference.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from space.attention.window import window_block as block_size, window_blocked as uses_blocks
from supernet.attention.base import expand_kv, register
from supernet.attention.rope import rotate
from supernet.attention.softmax import Softmax, positions_mask


def banded(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, causal: bool,
           keep: torch.Tensor | None = None) -> torch.Tensor:
    """Windowed attention of q (B, h, T, hd) over k, v (B, h, T, hd) (kv already expanded) in
    blocks. Causal: query p sees keys p - window < j <= p; else |p - j| <= window // 2."""
    b, h, t, hd = q.shape
    c = block_size(window)
    before, after = (window - 1, 0) if causal else (window // 2, window // 2)
    n = -(-t // c)  # blocks
    pad_q = n * c - t
    span = c + before + after  # keys a block can see
    # keys padded so that block i's slab starts at i * c: `before` in front, the rest behind
    kp = F.pad(k, (0, 0, before, pad_q + after))
    vp = F.pad(v, (0, 0, before, pad_q + after))
    ks = kp.unfold(2, span, c).transpose(-1, -2)  # (B, h, n, span, hd), a view
    vs = vp.unfold(2, span, c).transpose(-1, -2)
    qs = F.pad(q, (0, 0, 0, pad_q)).view(b, h, n, c, hd)
    qpos = torch.arange(n * c, device=q.device).view(n, c, 1)  # absolute positions
    kpos = (torch.arange(n, device=q.device) * c).view(n, 1, 1) - before + torch.arange(span, device=q.device)
    rel = qpos - kpos  # (n, c, span): query minus key position
    allowed = (rel >= 0) & (rel < window) if causal else rel.abs() <= window // 2
    allowed &= (kpos >= 0) & (kpos < t)  # the padding is no key
    mask = allowed[None, :, None].expand(b, n, 1, c, span)  # (B, n, 1, c, span): the same for every head
    if keep is not None:  # (B, T) real keys
        kk = F.pad(keep, (before, pad_q + after)).unfold(1, span, c)  # (B, n, span)
        mask = mask & kk[:, :, None, None, :]
        mask = mask | (rel == 0)[None, :, None]  # a padding query sees itself: no all -inf row (NaN would leak)
    # blocks as batch entries (B*n, h, ...): 4-D attention, what fused kernels and ONNX take
    merge = lambda x: x.transpose(1, 2).reshape(b * n, h, *x.shape[3:])  # noqa: E731
    out = F.scaled_dot_product_attention(merge(qs), merge(ks), merge(vs), attn_mask=mask.reshape(b * n, 1, c, span))
    return out.view(b, n, h, c, hd).transpose(1, 2).reshape(b, h, n * c, hd)[:, :, :t]


@register
class Window(Softmax):
    name = "window"

    def _window(self, layer) -> int:
        return layer.window

    def attend(self, q, k, v, extra, layer, causal, keep=None, rope=None):
        if not uses_blocks(q.shape[2], layer.window):
            return super().attend(q, k, v, extra, layer, causal, keep, rope=rope)
        if rope is not None:
            q, k = rotate(q, rope), rotate(k, rope)
        h = q.shape[1]
        return banded(q, expand_kv(k, h), expand_kv(v, h), layer.window, causal, keep)

    def step(self, q, k, v, extra, layer, state, rope=None):
        if state is not None or not uses_blocks(q.shape[2], layer.window):
            return super().step(q, k, v, extra, layer, state, rope=rope)
        if rope is not None:
            q, k = rotate(q, rope), rotate(k, rope)
        # a long prompt's prefill: blocked, then the bounded cache of its last window - 1 keys
        h = q.shape[1]
        out = banded(q, expand_kv(k, h), expand_kv(v, h), layer.window, causal=True)
        first = max(0, k.shape[2] - (layer.window - 1))
        return out, {"k": k[:, :, first:], "v": v[:, :, first:], "seen": q.shape[2]}


__all__ = ["Window", "banded", "block_size", "positions_mask", "uses_blocks"]
