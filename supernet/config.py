"""Training settings: one frozen dataclass, per-task presets, and the learning-rate schedule."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from space.errors import UserError
from space.options import check_fields, choices, flag, fraction, least, positive


# How `retrain` trains an exported arch: from scratch, fine-tuned from its inherited weights, or
# fine-tuned with the supernet's largest arch as teacher
RETRAIN_MODES = ("scratch", "finetune", "distill")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000
    batch_size: int = 16
    seq_len: int = 128
    lr: float = field(default=2e-3, metadata=positive())
    min_lr: float = 2e-4
    warmup: int = field(default=100, metadata=least(0))
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    # "sandwich": largest + smallest + n_random per step; "uniform": one random arch (HAT)
    sampling: str = field(default="sandwich", metadata=choices("sandwich", "uniform"))
    n_random: int = field(default=2, metadata=least(0))
    # sandwich only: the attention types of the largest and smallest archs. "reference": the space's
    # first type on every layer (always the same two archs); "mixed": drawn per layer at every step,
    # so no type gets more updates of the shared weights than another (the default: it ranks archs
    # better and removes the linear-attention bias, docs/benchmarks.md "ranking")
    extremes: str = field(default="mixed", metadata=choices("reference", "mixed"))
    distill: bool = True  # sandwich only: the smaller archs learn from the largest one's outputs ...
    distill_weight: float = field(default=0.5, metadata=fraction())  # ... with this weight on the distillation loss, the rest on the labels,
    distill_ramp: float = field(default=0.5, metadata=fraction())  # reached linearly over this fraction of the steps (a new teacher knows nothing)
    eval_every: int = 100
    eval_batches: int = 8
    ckpt_every: int = 50
    # translation trains with 0.1, as the Transformer and HAT
    label_smoothing: float = field(default=0.0, metadata=fraction(high_open=True))
    # Supernet-only adapters for the attention types that have one (linear: its own per-head map of
    # the shared queries and keys, folded into an extracted model's weights; `Kernel.adapt`). Off:
    # at equal compute it made linear archs inherit 0.21 nats better than alone and the ranking worse
    # (Kendall tau 0.53 against 0.77 on the 36 designed archs; docs/benchmarks.md, issue 20)
    type_adapters: bool = False
    # Warm start: another supernet's folder whose tensors of the same name and shape seed these weights
    # before step 0 (e.g. a long-context space from the short one: embeddings, attention and FFN
    # matrices carry over; a learned position table does not exist under RoPE and is left out)
    init_from: str | None = None
    # Translation only: the first `copy_warmup` steps also train on identity pairs (a target sentence
    # as its own source), a fraction of each batch falling linearly from 1 to 0 over those steps. A
    # byte-level encoder-decoder learns to read its source only after a sudden transition, late; the
    # identity task teaches the copying first (docs/translation.md, "a copy-friendly start")
    copy_warmup: int = field(default=0, metadata=least(0))
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, label=flag)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Any, where: str = "train") -> "TrainConfig":
        from space.files import check_keys
        return cls(**check_keys(d, where, [f.name for f in fields(cls)]))


# Per task. `--preset quick` trains the embedded default in about 10 minutes on 2 CPU cores.
# Translation batches are B sentence pairs (seq_len does not apply: each batch is as long as its
# longest pair) and use label smoothing. Its learning rate is lower on purpose: measured on a 2+2-layer
# model, lr 3e-3 never learned to copy random strings in 400 steps (loss stayed at ln 27), 1.5e-3
# barely began, 5e-4 to 1e-3 did; on the Folio corpus 1e-3 was best of 5e-4, 1e-3, 3e-3.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "lm": {
        "quick": dict(steps=550, batch_size=16, seq_len=128, lr=3e-3, warmup=40, eval_every=100, n_random=1),
        "full": dict(steps=6000, batch_size=32, seq_len=256, lr=2e-3, warmup=200, eval_every=250),
    },
    "translation": {
        "default": dict(batch_size=32, lr=1e-3, label_smoothing=0.1),
        "quick": dict(steps=450, batch_size=32, lr=1e-3, warmup=40, eval_every=100, n_random=1, label_smoothing=0.1),
        "full": dict(steps=6000, batch_size=64, lr=1e-3, warmup=200, eval_every=250, label_smoothing=0.1),
    },
    # Classification: windows of seq_len tokens of each labelled text, one label per window
    "classify": {
        "default": dict(batch_size=16, seq_len=512, lr=1e-3),
        "quick": dict(steps=400, batch_size=16, seq_len=512, lr=1e-3, warmup=40, eval_every=100, n_random=1),
        "full": dict(steps=4000, batch_size=32, seq_len=512, lr=1e-3, warmup=200, eval_every=250),
    },
}


def preset_names(task: str | None = None) -> list[str]:
    tasks = [task] if task else list(PRESETS)
    return sorted({p for t in tasks for p in PRESETS[t] if p != "default"})


def resolve_config(preset: str | None, task: str = "lm", **overrides: Any) -> TrainConfig:
    """The task's defaults, then the preset's, then every override that is not None."""
    presets = PRESETS[task]
    if preset is not None and preset not in presets:
        raise UserError(f"--preset {preset!r}: choose one of {', '.join(preset_names(task))}")
    base = dict(presets.get("default", {}))
    base.update(presets.get(preset, {}))
    names = {f.name for f in fields(TrainConfig)}
    unknown = [k for k in overrides if k not in names]
    if unknown:
        raise UserError(f"unknown training setting {unknown[0]!r}; known: {', '.join(sorted(names))}")
    base.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**base)


def copy_fraction(step: int, cfg: TrainConfig) -> float:
    """The share of identity pairs in a translation batch at `step` (1 falling to 0 over copy_warmup)."""
    return max(0.0, 1.0 - step / cfg.copy_warmup) if cfg.copy_warmup else 0.0


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))
