"""Rotary position embeddings (RoPE, Su et al. 2021): a query and a key rotated by their absolute
positions have a dot product that depends on their offset alone. The kernels of the types that take
them (`AttentionType.rope`) rotate where their math allows: softmax and window their queries and
keys before the scores; linear attention the feature-mapped ones, in the numerator only (RoFormer's
choice: the normaliser stays positive).
"""
from __future__ import annotations

import torch

Rope = tuple[torch.Tensor, torch.Tensor]  # cos, sin: (T, head_dim) for the positions of the tokens
ROPE_BASE = 10000.0


def rope_tables(start: int, t: int, head_dim: int, device: torch.device | str) -> Rope:
    """cos and sin of the rotation angles of positions start..start+t-1: (T, head_dim), each
    frequency on a pair of dimensions (the first half against the second, as `rotate` pairs them)."""
    inv = torch.pow(ROPE_BASE, torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / -head_dim)
    angles = torch.arange(start, start + t, dtype=torch.float32, device=device)[:, None] * inv
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, rope: Rope) -> torch.Tensor:
    """x (..., T, hd) rotated by its positions' angles: the dot product of a rotated query and key
    depends on their offset only."""
    cos, sin = rope
    half = x.shape[-1] // 2
    turned = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + turned * sin.to(x.dtype)
