"""Attention types as the space and the cost model see them (torch-free); see base.py.

The built-in six register here, in the order of the one-hot features every encoding uses."""
from space.attention.base import ATTENTION_TYPES, MODES, AttentionType, register, unregister
from space.attention import softmax, window, linear, linformer, fastformer, retention  # noqa: F401,E402  isort: skip

__all__ = ["ATTENTION_TYPES", "MODES", "AttentionType", "register", "unregister"]
