"""The interface every attention type implements, and the registry the model picks them from.

A kernel is pure math on already-projected heads: the Q/K/V/output projections are shared by all
types (weight sharing across types) and live in the block. A kernel may own extra parameters
(Linformer's sequence projections, Fastformer's pooling vectors); it declares their full shapes and
one function that slices the active part, used by the supernet's forward *and* by extraction.

Shapes: q (B, h, T, hd); k, v (B, kv, S, hd) with h % kv == 0 (grouped-query); out (B, h, T, hd).
`keep` is an optional (B, S) bool mask of real (non-padding) keys.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from space.arch import ATTENTION_TYPES, Layer
from space.registry import Registry

State = dict[str, Any]


class Kernel(ABC):
    name: str

    @property
    def causal_ok(self) -> bool:
        return ATTENTION_TYPES[self.name].causal

    def extra_shapes(self, heads: int, head_dim: int, max_len: int, param: int | None) -> dict[str, tuple[int, ...]]:
        """Full shapes of this type's own parameters for a layer of at most `heads` heads and the
        largest parameter value `param` (window, projected length): its space unit's (one place)."""
        return ATTENTION_TYPES[self.name].extra_shapes(heads, head_dim, max_len, param)

    def slice_extra(self, extra: dict[str, torch.Tensor], layer: Layer) -> dict[str, torch.Tensor]:
        """The active part of this type's own parameters for `layer` (views, no copies)."""
        return extra

    def init_extra(self, extra: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> None:
        pass

    # A supernet may give a type an *adapter*: parameters of its own that re-map the projections all
    # types share, applied to the active weights (so the SubTransformer it extracts has the plain
    # shapes and compute, the re-mapped weights folded in, and never holds the adapter itself).
    def adapter_shapes(self, heads: int, kv_heads: int, head_dim: int) -> dict[str, tuple[int, ...]]:
        """Full shapes of this type's supernet-only adapter (empty: none)."""
        return {}

    def adapt(self, block: dict[str, torch.Tensor], adapter: dict[str, torch.Tensor], layer: Layer,
              head_dim: int) -> dict[str, torch.Tensor]:
        """`block`'s active weights re-mapped by this type's adapter (new tensors for what changes)."""
        return block

    @abstractmethod
    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra: dict[str, torch.Tensor],
               layer: Layer, causal: bool, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Attention over a whole sequence (training, evaluation, encoders). A type that takes rotary
        positions (its unit's `rope`) also takes `rope=(cos, sin)` of the tokens (attention/rope.py)."""

    def step(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, extra: dict[str, torch.Tensor],
             layer: Layer, state: State | None) -> tuple[torch.Tensor, State]:
        """Causal attention for new tokens given the state left by earlier calls (None at the start):
        a prompt's prefill and each decode step. Must equal `attend(causal=True)` on the whole
        (with `rope`: the new tokens' positions, after those the state holds)."""
        raise NotImplementedError(f"attention type {self.name!r} cannot decode incrementally (not causal)")


def expand_kv(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, kv, S, hd) -> (B, heads, S, hd): each K/V head serves heads // kv query heads."""
    groups = heads // x.shape[1]
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


def _declared(name: str) -> None:
    if name not in ATTENTION_TYPES:
        raise KeyError(f"attention type {name!r} has no space unit: register one in space/attention/ first")


ATTENTION: Registry[Kernel] = Registry("attention type", check=_declared)
register = ATTENTION.register
_INSTANCES: dict[str, Kernel] = {}


def get_kernel(name: str) -> Kernel:
    """The kernel of an attention type (kernels hold no state: one instance each)."""
    if name not in _INSTANCES:
        _INSTANCES[name] = ATTENTION.create(name)
    return _INSTANCES[name]


def unregister(name: str) -> None:
    """Removes a kernel (a test's or a plugin's toy), with its cached instance."""
    ATTENTION.unregister(name)
    _INSTANCES.pop(name, None)


def kernels() -> dict[str, Kernel]:
    return {name: get_kernel(name) for name in ATTENTION.names()}
