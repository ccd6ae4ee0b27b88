"""Scoring archs with inherited weights, fast: the search calls this thousands of times.

Language-model validation windows are stacked once into one tensor and run in fixed-size chunks;
translation batches (padded, of different lengths) run as they are. Each arch runs on weight
*views* (no copies) under inference mode (no autograd); results are cached by arch id.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch

from space import Arch
from space.errors import UserError
from supernet import functional
from supernet.device import autocast, to_device
from supernet.loss import loss_sum, real_tokens


class Evaluator:
    def __init__(self, model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                 chunk: int | None = None, precision: str = "fp32") -> None:
        """Scores archs of `model` (a supernet, or a SubTransformer for its own arch) on the
        model's device, `chunk` windows at a time (default: 32 on a CPU, 256 on a GPU, where a
        bigger batch is what makes many archs a second), under autocast to `precision`."""
        pairs = list(batches)
        if not pairs:
            raise ValueError("Evaluator needs at least one validation batch")
        self.model = model
        self.device = next(model.parameters()).device
        self.precision = precision
        chunk = chunk or (256 if self.device.type == "cuda" else 32)
        if all(isinstance(x, torch.Tensor) for x, _ in pairs) and len({x.shape[1:] for x, _ in pairs}) == 1:
            x = torch.cat([x for x, _ in pairs])  # (N, T) once, reused for every arch
            y = torch.cat([y for _, y in pairs])
            pairs = [(x[i:i + chunk], y[i:i + chunk]) for i in range(0, len(x), chunk)]
        self.batches = [(to_device(x, self.device), y.to(self.device)) for x, y in pairs]
        vocab = (model.space if hasattr(model, "space") else model.arch).vocab_size
        self._tokens = sum(real_tokens(y, vocab) for _, y in self.batches)
        self.cache: dict[str, float] = {}
        self.evaluated = 0  # archs actually run (cache misses)

    @torch.inference_mode()
    def _run(self, arch: Arch) -> float:
        from supernet.precision import prepare
        total = 0.0
        # sliced once per arch, shared by every chunk; at the arch's precision (quantized once)
        weights = prepare(self.model.active_weights(arch), arch.precision, rounded_only=self.device.type == "cpu")
        with autocast(self.device, self.precision):
            for x, y in self.batches:
                tokens, kw = functional.batch_inputs(x)
                logits = functional.forward(arch, weights, tokens, **kw)
                total += loss_sum(logits, y)[0]
        self.evaluated += 1
        return total / self._tokens

    def loss(self, arch: Arch) -> float:
        """Mean cross-entropy per token (nats) on the validation windows; cached by arch id."""
        if arch.precision == "int8" and self.device.type != "cpu":
            raise UserError(f"arch {arch.id} runs at int8 (dynamic quantization), which PyTorch runs on CPUs only; "
                            f"score it with --device cpu, or search a GPU's precisions (fp32, bf16, fp16)")
        if arch.id not in self.cache:
            self.cache[arch.id] = self._run(arch)
        return self.cache[arch.id]

    def losses(self, archs: Iterable[Arch]) -> list[float]:
        return [self.loss(a) for a in archs]

    @property
    def tokens(self) -> int:
        """Labels scored per arch (padding excluded)."""
        return self._tokens


def perplexity(loss: float) -> float:
    return math.exp(loss)


def bits_per_token(loss: float) -> float:
    return loss / math.log(2)
