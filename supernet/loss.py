"""The losses, written once: token cross-entropy that ignores padding (training, validation, the
search's fitness), and in-place distillation. `PAD` labels (the padding of translation batches)
count in no loss and no token count."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from supernet.corpus.tokenizer import ByteTokenizer

PAD = ByteTokenizer.PAD


def lm_loss(logits: torch.Tensor, y: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over the labels that are not padding (the training loss)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=PAD,
                           label_smoothing=smoothing)


def loss_sum(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
    """(summed cross-entropy in nats, number of real labels) of one batch, no label smoothing: sums
    over batches divided by token counts give the exact mean over a whole split."""
    total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), ignore_index=PAD,
                            reduction="sum")
    return total.item(), real_tokens(y)


def real_tokens(y: torch.Tensor) -> int:
    return int((y != PAD).sum())


def distill_loss(student: torch.Tensor, teacher_probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) per real (non-padding) token: in-place distillation (BigNAS, OFA)."""
    v = student.shape[-1]
    real = y.reshape(-1) != PAD
    return F.kl_div(F.log_softmax(student.reshape(-1, v)[real], -1), teacher_probs.reshape(-1, v)[real],
                    reduction="batchmean")
