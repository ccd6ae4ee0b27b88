"""Sliding-window softmax attention (Longformer's local window): a causal query sees its last
`window` positions, a non-causal one the `window // 2` on each side. Decoding keeps a bounded cache
of `window - 1` keys, so its memory and per-token cost stop growing with the context."""
from __future__ import annotations

from supernet.attention.base import register
from supernet.attention.softmax import Softmax


@register
class Window(Softmax):
    name = "window"

    def _window(self, layer) -> int:
        return layer.window

