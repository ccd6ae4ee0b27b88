"""Full softmax attention, through torch's fused scaled_dot_product_attention; a KV cache decodes."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from supernet.attention.base import Kernel, State, register
from supernet.attention.rope import Rope, rotate


def positions_mask(q_start: int, t: int, k_start: int, s: int, window: int | None, device) -> torch.Tensor:
    """(t, s) bool: query at absolute position q_start+i may see key at k_start+j (causal, and
    within the last `window` positions if given)."""
    qp = torch.arange(q_start, q_start + t, device=device)[:, None]
    kp = torch.arange(k_start, k_start + s, device=device)[None, :]
    allowed = kp <= qp
    if window is not None:
        allowed &= (qp - kp) < window
    return allowed


@register
class Softmax(Kernel):
    name = "softmax"

    def _window(self, layer) -> int | None:
        """None: every earlier key; the sliding-window subclass narrows it to the last w."""
        return None

    def attend(self, q, k, v, extra, layer, causal, keep=None, rope: Rope | None = None):
        if rope is not None:
            q, k = rotate(q, rope), rotate(k, rope)
        mask = None if keep is None else keep[:, None, None, :]  # (B, 1, 1, S)
        if causal:
            if self._window(layer) is None and mask is None:
                return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            band = positions_mask(0, q.shape[2], 0, k.shape[2], self._window(layer), q.device)
            mask = band if mask is None else mask & band
        elif self._window(layer) is not None:
            qp = torch.arange(q.shape[2], device=q.device)[:, None]
            kp = torch.arange(k.shape[2], device=q.device)[None, :]
            band = (qp - kp).abs() <= self._window(layer) // 2
            mask = band if mask is None else mask & band
        if mask is not None and keep is not None and q.shape[2] == k.shape[2]:
            # A padding query sees itself, so no row is all -inf: a NaN there would leak through 0 * NaN.
            mask = mask | torch.eye(q.shape[2], dtype=torch.bool, device=q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)

    def step(self, q, k, v, extra, layer, state: State | None, rope: Rope | None = None):
        if rope is not None:  # the cache holds rotated keys: a key's rotation is its position's for good
            q, k = rotate(q, rope), rotate(k, rope)
        seen = 0 if state is None else state["seen"]  # tokens before this call
        if state is not None:
            k = torch.cat([state["k"], k], dim=2)
            v = torch.cat([state["v"], v], dim=2)
        t, s = q.shape[2], k.shape[2]
        window = self._window(layer)
        if t == 1 and (window is None or s <= window):
            out = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)  # one query sees every cached key
        elif state is None and window is None:
            # A prefill from an empty cache: the fused causal kernel, never a (t, t) mask (at t = 2048 the
            # mask path allocated 128 MB and spent an eighth of the prefill building it)
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            mask = positions_mask(seen, t, seen + t - s, s, window, q.device)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        if window is not None:  # bounded cache: the next query needs only the last w-1 keys
            first = max(0, k.shape[2] - (window - 1))
            k, v = k[:, :, first:], v[:, :, first:]
        return out, {"k": k, "v": v, "seen": seen + t}

