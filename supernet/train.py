"""Supernet training: the sandwich rule with in-place distillation (default), or HAT's uniform
sampling. Checkpoints are atomic safetensors files that carry every RNG state, so a killed run
resumes where its last checkpoint stopped and ends exactly where an uninterrupted run would."""
from __future__ import annotations

import csv
import io
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from space import Arch, SearchSpace
from space._io import atomic_write_text
from space.errors import UserError
from supernet.checkpoint import (FILE, SupernetRecord, TrainingState, has_supernet, load_supernet, random_state,
                                 read_checkpoint, read_record, save_supernet, write_checkpoint)
from supernet.corpus.tokenizer import ByteTokenizer
from supernet.config import PRESETS, TrainConfig, lr_at, preset_names, resolve_config
from supernet.functional import batch_inputs
from supernet.loss import PAD, distill_loss, lm_loss, loss_sum, real_tokens
from supernet.model import SuperTransformer

CKPT = FILE  # the checkpoint file of a supernet folder

__all__ = ["CKPT", "PAD", "PRESETS", "TrainConfig", "TrainState", "distill_loss", "evaluate_loss", "lm_loss",
           "load_supernet", "lr_at", "preset_names", "resolve_config", "run_batch", "train_fixed", "train_supernet"]


def run_batch(model, x, *arch: Arch) -> torch.Tensor:
    """Logits of a batch's input (see `functional.batch_inputs`) from a supernet (give `arch`) or a
    SubTransformer."""
    tokens, kw = batch_inputs(x)
    return model(tokens, *arch, **kw)


@dataclass
class TrainState:
    step: int
    model: SuperTransformer
    optimizer: torch.optim.Optimizer
    arch_rng: random.Random
    data_gen: torch.Generator
    log: list[dict[str, Any]]


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))


def _write_log(out: Path, log: list[dict[str, Any]]) -> None:
    if log:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(log[-1]))
        writer.writeheader()
        writer.writerows(log)
        atomic_write_text(out / "log.csv", text.getvalue())


def _save(out: Path, st: TrainState, record: SupernetRecord) -> None:
    record = record.replace(step=st.step, log=tuple(st.log))
    save_supernet(out, st.model, record, TrainingState(optimizer=st.optimizer.state_dict(),
                                                       arch_rng=random_state(st.arch_rng),
                                                       data_gen=st.data_gen.get_state()))
    _write_log(out, st.log)


def train_supernet(space: SearchSpace, batches, val_batches: list, out: Path, cfg: TrainConfig,
                   meta: dict[str, Any], progress: Callable[..., Any] | None = None) -> TrainState:
    """Trains (or resumes) a supernet. `batches.sample(B, generator)` yields (x, y); `val_batches`
    is a fixed list; `meta` holds the record's task, data and tokenizer. `progress(total, row)` is
    called every step with (total_steps, row)."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = SuperTransformer(space, seed=cfg.seed)
    opt = _optimizer(model, cfg)
    st = TrainState(0, model, opt, random.Random(cfg.seed), torch.Generator().manual_seed(cfg.seed), [])
    record = SupernetRecord(space=space.to_dict(), train=cfg, task=meta.get("task", "lm"), data=meta.get("data"),
                            tokenizer=meta.get("tokenizer") or ByteTokenizer().to_dict(), step=0)
    if has_supernet(out):
        _resume(out, st, record)
    largest, smallest = space.largest(), space.smallest()
    t0, tokens = time.perf_counter(), 0
    model.train()
    while st.step < cfg.steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(st.step, cfg)
        x, y = batches.sample(cfg.batch_size, st.data_gen)
        opt.zero_grad(set_to_none=True)
        if cfg.sampling == "sandwich":
            archs = [largest, smallest] + [space.sample(st.arch_rng) for _ in range(cfg.n_random)]
        else:
            archs = [space.sample(st.arch_rng)]
        teacher = None
        losses = []
        for i, arch in enumerate(archs):
            logits = run_batch(model, x, arch)
            if cfg.sampling == "sandwich" and cfg.distill and i > 0:
                # Pure distillation from the start copies a teacher that knows nothing yet and, through
                # the shared weights, holds the teacher back too (measured: 3.38 vs 2.62 nats after
                # 100 steps): mix in the labels, and bring distillation in gradually.
                w = cfg.distill_weight * min(1.0, st.step / max(1.0, cfg.distill_ramp * cfg.steps))
                loss = w * distill_loss(logits, teacher, y) + (1 - w) * lm_loss(logits, y, cfg.label_smoothing)
            else:
                loss = lm_loss(logits, y, cfg.label_smoothing)
                if i == 0:
                    teacher = logits.detach().softmax(-1)
            loss.backward()  # one graph at a time: memory of one arch, gradients accumulate
            losses.append(loss.item())
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        st.step += 1
        tokens += real_tokens(y)
        rate = tokens / (time.perf_counter() - t0)
        row: dict[str, Any] = {"step": st.step, "loss": losses[0], "lr": lr_at(st.step - 1, cfg), "tokens_per_s": rate}
        if st.step % cfg.eval_every == 0 or st.step == cfg.steps:
            model.eval()
            row["val_largest"] = evaluate_loss(model, largest, val_batches)
            row["val_smallest"] = evaluate_loss(model, smallest, val_batches)
            model.train()
            st.log.append(row)
        if progress:
            progress(cfg.steps, row)
        if st.step % cfg.ckpt_every == 0 or st.step == cfg.steps:
            _save(out, st, record)
    model.eval()
    return st


def _resume(out: Path, st: TrainState, record: SupernetRecord) -> None:
    old = read_record(out)
    if (old.train, old.space, old.task, old.data) != (record.train, record.space, record.task, record.data):
        raise UserError(f"{out}: holds a supernet trained with other settings; pass another --out, "
                        f"or the same settings to resume it")
    tensors, _, training = read_checkpoint(out / FILE, training=True)
    if training is None or training.optimizer is None:
        raise UserError(f"{out}: its supernet holds no training state (a shipped, weights-only file); "
                        f"train into another --out")
    st.model.load_state_dict(tensors)
    st.optimizer.load_state_dict(training.optimizer)
    st.arch_rng.setstate(training.arch_rng)
    st.data_gen.set_state(training.data_gen)
    st.step, st.log = old.step, list(old.log)


@torch.inference_mode()
def evaluate_loss(model, arch: Arch, batches: list) -> float:
    """Mean cross-entropy (nats) per real label token, without label smoothing."""
    total, n = 0.0, 0
    for x, y in batches:
        s, k = loss_sum(run_batch(model, x, arch), y)
        total, n = total + s, n + k
    return total / n


def train_fixed(model: torch.nn.Module, batches, cfg: TrainConfig, progress: Callable[[int], Any] | None = None,
                teacher: Callable[[torch.Tensor], torch.Tensor] | None = None, ckpt: Path | None = None) -> list[float]:
    """Plain training of one fixed model (a SubTransformer) with the supernet's schedule and data
    order: the baseline an inherited-weight ranking is judged against, and `nas retrain`.
    With `teacher` (batch input -> logits) the loss mixes distillation in as the sandwich rule does;
    with `ckpt` the run is checkpointed atomically every `ckpt_every` steps and resumes from it."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
    losses: list[float] = []
    start = 0
    if ckpt is not None and ckpt.is_file():
        tensors, header, state = read_checkpoint(ckpt, training=True)
        if header.get("train") != cfg.to_dict() or state is None:
            raise UserError(f"{ckpt}: a retraining with other settings is in progress; remove it or use the same settings")
        model.load_state_dict(tensors)
        opt.load_state_dict(state.optimizer)
        gen.set_state(state.data_gen)
        start, losses = header["step"], list(state.extra["losses"])
    model.train()
    for step in range(start, cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        x, y = batches.sample(cfg.batch_size, gen)
        opt.zero_grad(set_to_none=True)
        logits = run_batch(model, x)
        loss = lm_loss(logits, y, cfg.label_smoothing)
        if teacher is not None:
            with torch.no_grad():
                soft = teacher(x).softmax(-1)
            loss = cfg.distill_weight * distill_loss(logits, soft, y) + (1 - cfg.distill_weight) * loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(loss.item())
        if ckpt is not None and ((step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps):
            write_checkpoint(ckpt, model.state_dict(), {"step": step + 1, "train": cfg.to_dict()},
                             TrainingState(optimizer=opt.state_dict(), data_gen=gen.get_state(),
                                           extra={"losses": losses}))
        if progress:
            progress(step + 1)
    model.eval()
    return losses
