"""Supernet training: the sandwich rule with in-place distillation (default), or HAT's uniform
sampling; on any device, in any precision, in one process or many (`torchrun`, DDP).

Every random choice of step t — the archs trained and the global batch's rows — is drawn from a
generator seeded by (seed, t), never from a stream that advances: every rank draws the same archs,
each takes its slice of the same global batch, and a run resumed at step t (on any number of ranks)
continues exactly where it stopped. Rank 0 writes the atomic safetensors checkpoints and the log."""
from __future__ import annotations

import csv
import hashlib
import io
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from space import Arch, SearchSpace
from space.files import atomic_write_text
from space.errors import UserError
from supernet.checkpoint import (FILE, SupernetRecord, TrainingState, checkpoint_path, has_supernet, load_supernet,
                                 read_checkpoint, read_record, save_supernet, write_checkpoint)
from supernet.config import PRESETS, TrainConfig, copy_fraction, lr_at, preset_names, resolve_config
from supernet.corpus.tokenizer import ByteTokenizer
from supernet.device import Dist, autocast, grad_scaler, to_device
from supernet.functional import batch_inputs
from supernet.loss import PAD, distill_loss, lm_loss, loss_sum, real_tokens
from supernet.model import SuperTransformer

CKPT = FILE  # the checkpoint file of a supernet folder

__all__ = ["CKPT", "PAD", "PRESETS", "Runtime", "TrainConfig", "TrainState", "distill_loss", "evaluate_loss",
           "lm_loss", "load_supernet", "lr_at", "preset_names", "resolve_config", "run_batch", "step_archs",
           "train_fixed", "train_supernet"]


@dataclass(frozen=True)
class Runtime:
    """How a training runs, not what it learns: free to change between a run and its resume."""

    device: torch.device = torch.device("cpu")
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast over fp32 master weights)
    grad_accum: int = 1  # micro-batches per optimizer step (per rank)
    checkpointing: bool = False  # activation checkpointing of every block
    dist: Dist = Dist()

    def micro_batch(self, batch_size: int) -> int:
        per = self.dist.world * self.grad_accum
        if batch_size % per:
            raise UserError(f"--batch-size {batch_size} must divide into {self.dist.world} ranks x --grad-accum "
                            f"{self.grad_accum} equal micro-batches; use a multiple of {per}")
        return batch_size // per


def run_batch(model, x, *arch: Arch, **kw: Any) -> torch.Tensor:
    """Logits of a batch's input (see `functional.batch_inputs`) from a supernet (give `arch`) or a
    SubTransformer."""
    tokens, extra = batch_inputs(x)
    return model(tokens, *arch, **extra, **kw)


@dataclass
class TrainState:
    step: int
    model: SuperTransformer
    optimizer: torch.optim.Optimizer
    log: list[dict[str, Any]]


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))


def _seed(*key: object) -> int:
    """A 63-bit seed from a key, stable across processes and machines."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, key)).encode()).digest()[:8], "little") >> 1


def step_archs(space: SearchSpace, cfg: TrainConfig, step: int) -> list[Arch]:
    """The archs step `step` trains, the teacher first: a function of (seed, step) alone."""
    rng = random.Random(_seed("archs", cfg.seed, step))
    if cfg.sampling == "uniform":
        return [space.sample(rng)]
    if cfg.extremes == "mixed":
        archs = [space.largest(rng), space.smallest(rng)]
    else:
        archs = [space.largest(), space.smallest()]
    return archs + [space.sample(rng) for _ in range(cfg.n_random)]


def _slice(x: Any, rows: slice) -> Any:
    return {k: v[rows] for k, v in x.items()} if isinstance(x, dict) else x[rows]


def _write_log(out: Path, log: list[dict[str, Any]]) -> None:
    if log:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(log[-1]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(log)
        atomic_write_text(out / "log.csv", text.getvalue())


def train_supernet(space: SearchSpace, batches, val_batches: list, out: Path, cfg: TrainConfig,
                   meta: dict[str, Any], progress: Callable[..., Any] | None = None,
                   runtime: Runtime = Runtime()) -> TrainState:
    """Trains (or resumes) a supernet. `batches.sample(B, generator)` yields a global batch (x, y);
    `val_batches` is a fixed list; `meta` holds the record's task, data and tokenizer.
    `progress(total, row)` is called every step (on rank 0)."""
    import torch.distributed as tdist
    rt, dist = runtime, runtime.dist
    micro = rt.micro_batch(cfg.batch_size)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = SuperTransformer(space, seed=cfg.seed, adapters=cfg.type_adapters)
    record = SupernetRecord(space=space.to_dict(), train=cfg, task=meta.get("task", "lm"), data=meta.get("data"),
                            tokenizer=meta.get("tokenizer") or ByteTokenizer().to_dict(), step=0)
    st = TrainState(0, model, _optimizer(model, cfg), [])
    scaler = grad_scaler(rt.device, rt.precision)
    if has_supernet(out):
        _resume(out, st, record, scaler)
    elif cfg.init_from:
        taken, _ = warm_start(model, Path(cfg.init_from))
        if not taken:
            raise UserError(f"--init-from {cfg.init_from}: none of its tensors has the name and shape of one of "
                            f"this supernet's (another width or vocabulary?); nothing to start from")
    model.to(rt.device)
    _optimizer_to(st.optimizer, rt.device)
    if dist.active:
        # Subnets skip layers and other attention types' parameters: those get no gradient on any rank
        # (every rank trains the same archs), so DDP must look for unused parameters. It leaves their
        # .grad None, as a single process does, so AdamW neither decays nor moves them: the test
        # tests/test_distributed.py checks 2 ranks against 1, parameter for parameter.
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda"
                                                        else None, find_unused_parameters=True)
    else:
        net = model
    t0, tokens = time.perf_counter(), 0
    model.train()
    opt = st.optimizer
    while st.step < cfg.steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(st.step, cfg)
        gen = torch.Generator().manual_seed(_seed("data", cfg.seed, st.step))
        copy = copy_fraction(st.step, cfg)
        x, y = batches.sample(cfg.batch_size, gen, copy=copy) if copy else batches.sample(cfg.batch_size, gen)
        archs = step_archs(space, cfg, st.step)
        opt.zero_grad(set_to_none=True)
        w = 0.0
        if cfg.sampling == "sandwich" and cfg.distill:
            # Pure distillation from the start copies a teacher that knows nothing yet and, through the
            # shared weights, holds the teacher back too (measured: 3.38 vs 2.62 nats after 100 steps):
            # mix in the labels, and bring distillation in gradually.
            w = cfg.distill_weight * min(1.0, st.step / max(1.0, cfg.distill_ramp * cfg.steps))
        losses = torch.zeros(len(archs), dtype=torch.float64)
        passes = rt.grad_accum * len(archs)
        done = 0
        for m in range(rt.grad_accum):
            rows = slice((dist.rank * rt.grad_accum + m) * micro, (dist.rank * rt.grad_accum + m + 1) * micro)
            xm, ym = to_device(_slice(x, rows), rt.device), _slice(y, rows).to(rt.device)
            teacher = None
            for i, arch in enumerate(archs):
                done += 1
                sync = done == passes  # gradients are all-reduced once per step, after the last backward
                with net.no_sync() if dist.active and not sync else nullcontext():
                    with autocast(rt.device, rt.precision):
                        logits = run_batch(net, xm, arch, checkpoint=rt.checkpointing)
                        if w > 0 and i > 0:
                            loss = (w * distill_loss(logits, teacher, ym)
                                    + (1 - w) * lm_loss(logits, ym, cfg.label_smoothing))
                        else:
                            loss = lm_loss(logits, ym, cfg.label_smoothing)
                            if i == 0 and w > 0:
                                teacher = logits.detach().float().softmax(-1)
                    scaler.scale(loss / rt.grad_accum).backward()  # one graph at a time: one arch's memory
                losses[i] += loss.item() / rt.grad_accum
            tokens += int(xm["keep"].sum()) if isinstance(xm, dict) and "keep" in xm else real_tokens(ym, space.vocab_size)
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        st.step += 1
        if dist.active:  # the logged losses: means over the global batch, as one process would log them
            tdist.all_reduce(losses)
            losses /= dist.world
        rate = tokens * dist.world / (time.perf_counter() - t0)
        row: dict[str, Any] = {"step": st.step, "loss": float(losses[0]), "lr": lr_at(st.step - 1, cfg),
                               "tokens_per_s": rate}
        if st.step % cfg.eval_every == 0 or st.step == cfg.steps:
            if dist.main:
                model.eval()
                with autocast(rt.device, rt.precision):
                    row["val_largest"] = evaluate_loss(model, space.largest(), val_batches, rt.device)
                    row["val_smallest"] = evaluate_loss(model, space.smallest(), val_batches, rt.device)
                model.train()
                st.log.append(row)
        if progress and dist.main:
            progress(cfg.steps, row)
        if st.step % cfg.ckpt_every == 0 or st.step == cfg.steps:
            if dist.main:
                _save(out, st, record, scaler)
            if dist.active:
                tdist.barrier()  # no rank runs ahead of a checkpoint it might have to resume from
    model.eval()
    return st


def _optimizer_to(opt: torch.optim.Optimizer, device: torch.device) -> None:
    for state in opt.state.values():
        for k, v in state.items():
            if isinstance(v, torch.Tensor) and k != "step":
                state[k] = v.to(device)


def _save(out: Path, st: TrainState, record: SupernetRecord, scaler) -> None:
    record = record.replace(step=st.step, log=tuple(st.log))
    save_supernet(out, st.model, record, TrainingState(optimizer=st.optimizer.state_dict(),
                                                       extra={"scaler": scaler.state_dict()}))
    _write_log(out, st.log)


def warm_start(model: torch.nn.Module, folder: Path) -> tuple[list[str], list[str]]:
    """Copies into `model` every tensor of the supernet in `folder` with the same name and shape;
    (names taken, names of `model` left at their initialisation)."""
    tensors, _, _ = read_checkpoint(checkpoint_path(folder))
    own = model.state_dict()
    taken = [k for k, t in tensors.items() if k in own and own[k].shape == t.shape]
    with torch.no_grad():
        for k in taken:
            own[k].copy_(tensors[k].to(own[k].dtype))
    return taken, sorted(set(own) - set(taken))


def _resume(out: Path, st: TrainState, record: SupernetRecord, scaler) -> None:
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
    if training.extra.get("scaler"):
        scaler.load_state_dict(training.extra["scaler"])
    st.step, st.log = old.step, list(old.log)


@torch.inference_mode()
def evaluate_loss(model, arch: Arch, batches: list, device: torch.device | None = None) -> float:
    """Mean cross-entropy (nats) per real label token, without label smoothing."""
    total, n = 0.0, 0
    for x, y in batches:
        if device is not None:
            x, y = to_device(x, device), y.to(device)
        s, k = loss_sum(run_batch(model, x, arch), y)
        total, n = total + s, n + k
    return total / n


def train_fixed(model: torch.nn.Module, batches, cfg: TrainConfig, progress: Callable[[int], Any] | None = None,
                teacher: Callable[[torch.Tensor], torch.Tensor] | None = None, ckpt: Path | None = None,
                runtime: Runtime = Runtime()) -> list[float]:
    """Plain training of one fixed model (a SubTransformer) with the supernet's schedule: the
    baseline an inherited-weight ranking is judged against, and `nas retrain`. With `teacher`
    (batch input -> logits) the loss mixes distillation in as the sandwich rule does; with `ckpt`
    the run is checkpointed atomically every `ckpt_every` steps and resumes from it. `runtime`:
    device, precision, activation checkpointing and gradient accumulation (the batch split into
    `grad_accum` micro-batches, one optimizer step, the same update up to rounding); AdamW as the
    supernet loop sets it (weight decay on matrices only); one process
    only (a distributed runtime is refused: one small model gains nothing from ranks here)."""
    rt = runtime
    if rt.dist.active:
        raise UserError("retraining one model runs in one process; run it without torchrun")
    micro = rt.micro_batch(cfg.batch_size)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.to(rt.device)
    opt = _optimizer(model, cfg)  # as the supernet loop: no weight decay on norms and biases
    scaler = grad_scaler(rt.device, rt.precision)
    losses: list[float] = []
    start = 0
    if ckpt is not None and ckpt.is_file():
        tensors, header, state = read_checkpoint(ckpt, training=True)
        if header.get("train") != cfg.to_dict() or state is None:
            raise UserError(f"{ckpt}: a retraining with other settings is in progress; remove it or use the same settings")
        model.load_state_dict(tensors)
        try:
            opt.load_state_dict(state.optimizer)
        except ValueError:  # before hwnas grouped weight decay here as the supernet loop does
            raise UserError(f"{ckpt}: a retraining checkpoint of an older hwnas (one optimizer group); "
                            "remove it to start again") from None
        gen.set_state(state.data_gen)
        start, losses = header["step"], list(state.extra["losses"])
    model.train()
    for step in range(start, cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        x, y = batches.sample(cfg.batch_size, gen)
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for m in range(rt.grad_accum):
            rows = slice(m * micro, (m + 1) * micro)
            xm, ym = to_device(_slice(x, rows), rt.device), _slice(y, rows).to(rt.device)
            with autocast(rt.device, rt.precision):
                logits = run_batch(model, xm, checkpoint=rt.checkpointing)
                loss = lm_loss(logits, ym, cfg.label_smoothing)
                if teacher is not None:
                    with torch.no_grad():
                        soft = teacher(xm).float().softmax(-1)
                    loss = cfg.distill_weight * distill_loss(logits, soft, ym) + (1 - cfg.distill_weight) * loss
            scaler.scale(loss / rt.grad_accum).backward()
            total += loss.item() / rt.grad_accum
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        losses.append(total)
        if ckpt is not None and ((step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps):
            write_checkpoint(ckpt, model.state_dict(), {"step": step + 1, "train": cfg.to_dict()},
                             TrainingState(optimizer=opt.state_dict(), data_gen=gen.get_state(),
                                           extra={"losses": losses}))
        if progress:
            progress(step + 1)
    model.eval()
    return losses
