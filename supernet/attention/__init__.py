"""Attention kernels: one file each, registered by name in `ATTENTION` (a `Registry`), beside the
type's torch-free unit in space/attention/ (what the space and the cost model know of it). Adding a
type = a unit there and an `@register`-ed Kernel class here, each imported by its package."""
from supernet.attention.base import ATTENTION, Kernel, expand_kv, get_kernel, kernels, register, unregister
from supernet.attention import softmax, window, linear, linformer, fastformer, retention  # noqa: F401  (registers)

__all__ = ["ATTENTION", "Kernel", "expand_kv", "get_kernel", "kernels", "register", "unregister"]
