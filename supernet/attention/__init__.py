"""Attention types: one file each, registered by name. Adding a type = one file here, one import
below, and one entry in space.arch.ATTENTION_TYPES."""
from supernet.attention.base import Kernel, expand_kv, get_kernel, kernels, register
from supernet.attention import softmax, window, linear, linformer, fastformer  # noqa: F401  (registers)

__all__ = ["Kernel", "expand_kv", "get_kernel", "kernels", "register"]
