"""Scoring archs with inherited weights, fast: the search calls this thousands of times.

Language-model validation batches are stacked into chunks of a fixed number of windows; translation
batches (padded, of different lengths) run as they are. Each batch's summed loss is kept per arch,
so a loss on a prefix of the batches (the search's cheap fitness) and a later one on more of them
(its hurdles and final re-score) never run a batch twice. Each arch runs on weight
*views* (no copies) under inference mode (no autograd); results are cached by arch id.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch

from space import Arch
from space.errors import UserError
from space.options import check_int
from supernet import functional
from supernet.device import autocast, to_device
from supernet.loss import real_tokens, row_loss_sums


class Evaluator:
    def __init__(self, model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                 chunk: int | None = None, precision: str = "fp32") -> None:
        """Scores archs of `model` (a supernet, or a SubTransformer for its own arch) on the
        model.s device, `chunk` windows at a time (default: 16 on a CPU, 256 on a GPU, where a
        bigger batch is what makes many archs a second), under autocast to `precision`.

        A loss can be asked for on the first `batches` batches alone (`loss(arch, batches=n)`):
        the search's cheap fitness, its hurdles and its final re-score are prefixes of one list of
        batches, and each batch is run once per arch whatever the order they are asked in."""
        pairs = list(batches)
        if not pairs:
            raise ValueError("Evaluator needs at least one validation batch")
        self.model = model
        self.device = next(model.parameters()).device
        self.precision = precision
        self.chunk = chunk or (256 if self.device.type == "cuda" else 16)
        self.stackable = all(isinstance(x, torch.Tensor) for x, _ in pairs) and len({x.shape[1:] for x, _ in pairs}) == 1
        self.batches = [(to_device(x, self.device), y.to(self.device)) for x, y in pairs]
        vocab = (model.space if hasattr(model, "space") else model.arch).vocab_size
        self._batch_tokens = [real_tokens(y, vocab) for _, y in self.batches]
        self._sums: dict[str, list[float]] = {}  # arch id -> summed loss of each batch run so far, in order
        self.evaluated = 0  # archs run for the first time (cache misses)

    def _groups(self, first: int, last: int) -> list[tuple[int, int]]:
        """Batches [first, last) in runs of consecutive batches of at most `chunk` windows (one
        batch per run where batches cannot be stacked)."""
        out, start, rows = [], first, 0
        for b in range(first, last):
            n = self.batches[b][1].shape[0]
            if b > start and (not self.stackable or rows + n > self.chunk):
                out.append((start, b))
                start, rows = b, 0
            rows += n
        if last > start:
            out.append((start, last))
        return out

    @torch.inference_mode()
    def _run(self, arch: Arch, upto: int) -> list[float]:
        from supernet.precision import prepare
        sums = self._sums.setdefault(arch.id, [])
        if len(sums) >= upto:
            return sums
        if not sums:
            self.evaluated += 1
        # sliced once per call, shared by every chunk; at the arch's precision (quantized once)
        weights = prepare(self.model.active_weights(arch), arch.precision, rounded_only=self.device.type == "cpu")
        with autocast(self.device, self.precision):
            for a, b in self._groups(len(sums), upto):
                part = self.batches[a:b]
                x = part[0][0] if b - a == 1 else torch.cat([p[0] for p in part])
                y = part[0][1] if b - a == 1 else torch.cat([p[1] for p in part])
                tokens, kw = functional.batch_inputs(x)
                rows = row_loss_sums(functional.forward(arch, weights, tokens, **kw), y)
                at = 0
                for p in part:
                    n = p[1].shape[0]
                    sums.append(float(rows[at:at + n].sum()))
                    at += n
        return sums

    def loss(self, arch: Arch, batches: int | None = None) -> float:
        """Mean cross-entropy per token (nats) on the validation batches (the first `batches` of
        them, if given); cached by arch id, so a larger prefix only runs the batches it adds."""
        if arch.precision == "int8" and self.device.type != "cpu":
            raise UserError(f"arch {arch.id} runs at int8 (dynamic quantization), which PyTorch runs on CPUs only; "
                            f"score it with --device cpu, or search a GPU's precisions (fp32, bf16, fp16)")
        n = self._prefix(batches)
        return sum(self._run(arch, n)[:n]) / self.tokens_of(n)

    def losses(self, archs: Iterable[Arch], batches: int | None = None) -> list[float]:
        return [self.loss(a, batches) for a in archs]

    def _prefix(self, batches: int | None) -> int:
        if batches is None:
            return len(self.batches)
        check_int(batches, "batches", 1, ValueError)
        return min(batches, len(self.batches))

    def tokens_of(self, batches: int | None = None) -> int:
        """Labels scored per arch on the first `batches` batches (all of them by default)."""
        return sum(self._batch_tokens[:self._prefix(batches)])

    @property
    def tokens(self) -> int:
        """Labels scored per arch (padding excluded)."""
        return self.tokens_of(None)

    @property
    def num_batches(self) -> int:
        return len(self.batches)

    @property
    def cache(self) -> dict[str, float]:
        """arch id -> loss over every batch, for the archs run on all of them."""
        n = len(self.batches)
        return {k: sum(v[:n]) / self.tokens_of(n) for k, v in self._sums.items() if len(v) >= n}


@torch.inference_mode()
def accuracy(model: torch.nn.Module, arch: Arch, batches: Iterable, precision: str = "fp32") -> float:
    """A classifier's share of texts whose most likely label is theirs (a supernet's arch, or a
    SubTransformer with arch None), over `batches` of ({"tokens", "keep"}, labels)."""
    from supernet.precision import prepare
    device = next(model.parameters()).device
    weights = prepare(model.active_weights(arch) if arch is not None and hasattr(model, "active_weights")
                      else model.run_weights(), (arch or model.arch).precision, rounded_only=device.type == "cpu")
    right = total = 0
    with autocast(device, precision):
        for x, y in batches:
            tokens, kw = functional.batch_inputs(to_device(x, device))
            pred = functional.forward(arch or model.arch, weights, tokens, **kw).argmax(-1)
            right += int((pred.cpu() == y.cpu()).sum())
            total += y.numel()
    return right / max(1, total)


def perplexity(loss: float) -> float:
    return math.exp(loss)


def bits_per_token(loss: float) -> float:
    return loss / math.log(2)
