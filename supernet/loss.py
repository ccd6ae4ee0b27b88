"""The losses, written once: token cross-entropy that ignores padding (training, validation, the
search's fitness), and in-place distillation. Padding labels (of translation batches) count in no
loss and no token count; the PAD id is the third-last of the vocabulary (every tokenizer's
convention: `supernet.corpus.tokenizer.special_ids`), so it follows from the logits' width."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from supernet.corpus.tokenizer import ByteTokenizer, special_ids

PAD = ByteTokenizer.PAD  # of the byte vocabulary


def pad_of(vocab_size: int) -> int:
    return special_ids(vocab_size)[0]


def _ignored(logits: torch.Tensor) -> int:
    """The label no loss counts: PAD for token logits (B, T, vocab); none for a classifier's (B, classes)."""
    return pad_of(logits.shape[-1]) if logits.dim() == 3 else -100


def lm_loss(logits: torch.Tensor, y: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over the labels that are not padding (the training loss)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                           ignore_index=_ignored(logits), label_smoothing=smoothing)


def loss_sum(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
    """(summed cross-entropy in nats, number of real labels) of one batch, no label smoothing: sums
    over batches divided by token counts give the exact mean over a whole split."""
    v = logits.shape[-1]
    total = F.cross_entropy(logits.reshape(-1, v).float(), y.reshape(-1), ignore_index=_ignored(logits), reduction="sum")
    return total.item(), int((y != _ignored(logits)).sum())


def row_loss_sums(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy (nats, float32) of each row of a batch, padding ignored: (B,)."""
    v = logits.shape[-1]
    per = F.cross_entropy(logits.reshape(-1, v).float(), y.reshape(-1), ignore_index=_ignored(logits), reduction="none")
    return per.view(y.shape[0], -1).sum(1)


def real_tokens(y: torch.Tensor, vocab_size: int) -> int:
    """Labels that count: the tokens that are not padding (a classifier's labels, (B,), all count)."""
    return y.numel() if y.dim() == 1 else int((y != pad_of(vocab_size)).sum())


def distill_loss(student: torch.Tensor, teacher_probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) per real (non-padding) token: in-place distillation (BigNAS, OFA)."""
    v = student.shape[-1]
    real = y.reshape(-1) != _ignored(student)
    return F.kl_div(F.log_softmax(student.reshape(-1, v)[real].float(), -1), teacher_probs.reshape(-1, v)[real],
                    reduction="batchmean")
