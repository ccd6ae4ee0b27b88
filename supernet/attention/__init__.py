"""Attention types: one file each, registered by name in `ATTENTION` (a `Registry`). Adding a type =
one file here with an `@register`-ed Kernel class, one import below, and one entry in
space.arch.ATTENTION_TYPES."""
from supernet.attention.base import ATTENTION, Kernel, expand_kv, get_kernel, kernels, register
from supernet.attention import softmax, window, linear, linformer, fastformer  # noqa: F401  (registers)

__all__ = ["ATTENTION", "Kernel", "expand_kv", "get_kernel", "kernels", "register"]
