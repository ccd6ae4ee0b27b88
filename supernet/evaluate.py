"""Scoring archs with inherited weights, fast: the search calls this thousands of times.

The validation windows are stacked once into one tensor; each arch runs on weight *views* (no
copies) under inference mode (no autograd), in fixed-size chunks; results are cached by arch id.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn.functional as F

from space import Arch


class Evaluator:
    def __init__(self, model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                 chunk: int = 32) -> None:
        pairs = list(batches)
        if not pairs:
            raise ValueError("Evaluator needs at least one validation batch")
        self.model = model
        self.x = torch.cat([x for x, _ in pairs])  # (N, T) once, reused for every arch
        self.y = torch.cat([y for _, y in pairs])
        self.chunk = chunk
        self.cache: dict[str, float] = {}
        self.evaluated = 0  # archs actually run (cache misses)

    @torch.inference_mode()
    def _run(self, arch: Arch) -> float:
        total = 0.0
        weights = self.model.active_weights(arch)  # sliced once per arch, shared by every chunk
        from supernet import functional
        for i in range(0, len(self.x), self.chunk):
            logits = functional.forward(arch, weights, self.x[i:i + self.chunk])
            total += F.cross_entropy(logits.flatten(0, 1), self.y[i:i + self.chunk].flatten(), reduction="sum").item()
        self.evaluated += 1
        return total / self.y.numel()

    def loss(self, arch: Arch) -> float:
        """Mean cross-entropy per token (nats) on the validation windows; cached by arch id."""
        if arch.id not in self.cache:
            self.cache[arch.id] = self._run(arch)
        return self.cache[arch.id]

    def losses(self, archs: Iterable[Arch]) -> list[float]:
        return [self.loss(a) for a in archs]

    @property
    def tokens(self) -> int:
        return self.y.numel()


def perplexity(loss: float) -> float:
    return math.exp(loss)


def bits_per_token(loss: float) -> float:
    return loss / math.log(2)
