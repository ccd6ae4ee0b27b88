"""Supernet training: the sandwich rule with in-place distillation (default), or HAT's uniform
sampling. Checkpoints are atomic and carry every RNG state, so a killed run resumes where its last
checkpoint stopped and ends exactly where an uninterrupted run would."""
from __future__ import annotations

import csv
import io
import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from space import Arch, SearchSpace, space_from_dict
from space._io import atomic_write_bytes, atomic_write_text
from space.errors import UserError
from supernet.corpus.tokenizer import ByteTokenizer
from supernet.functional import batch_inputs
from supernet.model import SuperTransformer

PAD = ByteTokenizer.PAD  # labels equal to PAD (translation batches' padding) count in no loss

CKPT = "supernet.pt"


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000
    batch_size: int = 16
    seq_len: int = 128
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    sampling: str = "sandwich"  # "sandwich": largest + smallest + n_random per step; "uniform": one random arch (HAT)
    n_random: int = 2
    distill: bool = True  # sandwich only: the smaller archs learn from the largest one's outputs ...
    distill_weight: float = 0.5  # ... with this weight on the distillation loss, the rest on the labels,
    distill_ramp: float = 0.5  # reached linearly over this fraction of the steps (a new teacher knows nothing)
    eval_every: int = 100
    eval_batches: int = 8
    ckpt_every: int = 50
    label_smoothing: float = 0.0  # translation trains with 0.1, as the Transformer and HAT
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sampling not in ("sandwich", "uniform"):
            raise UserError(f"--sampling {self.sampling!r}: choose sandwich or uniform")
        for name in ("steps", "batch_size", "seq_len", "eval_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')}={getattr(self, name)} must be at least 1")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(f"--label-smoothing {self.label_smoothing}: must be in [0, 1)")


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
}


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to min_lr."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))


def run_batch(model, x, *arch: Arch) -> torch.Tensor:
    """Logits of a batch's input (see `functional.batch_inputs`) from a supernet (give `arch`) or a
    SubTransformer."""
    tokens, kw = batch_inputs(x)
    return model(tokens, *arch, **kw)


def lm_loss(logits: torch.Tensor, y: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy over the labels that are not padding."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=PAD,
                           label_smoothing=smoothing)


def distill_loss(student: torch.Tensor, teacher_probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) per real (non-padding) token: in-place distillation (BigNAS, OFA)."""
    v = student.shape[-1]
    real = y.reshape(-1) != PAD
    return F.kl_div(F.log_softmax(student.reshape(-1, v)[real], -1), teacher_probs.reshape(-1, v)[real],
                    reduction="batchmean")


@dataclass
class TrainState:
    step: int
    model: SuperTransformer
    optimizer: torch.optim.Optimizer
    arch_rng: random.Random
    data_gen: torch.Generator
    log: list[dict[str, Any]]


def _save(out: Path, st: TrainState, cfg: TrainConfig, meta: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save({"step": st.step, "model": st.model.state_dict(), "optimizer": st.optimizer.state_dict(),
                "arch_rng": st.arch_rng.getstate(), "data_gen": st.data_gen.get_state(), "log": st.log,
                "train": asdict(cfg), "space": st.model.space.to_dict(), "meta": meta}, buf)
    atomic_write_bytes(out / CKPT, buf.getvalue())
    if st.log:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(st.log[-1]))
        writer.writeheader()
        writer.writerows(st.log)
        atomic_write_text(out / "log.csv", text.getvalue())


def load_supernet(folder: str | Path) -> tuple[SuperTransformer, dict[str, Any]]:
    """A trained supernet (eval mode) and its checkpoint's metadata (train config, data, step)."""
    path = Path(folder) / CKPT
    if not path.is_file():
        raise UserError(f"{folder}: no trained supernet here ({CKPT} missing); "
                        f"train one with `nas train-supernet --out {folder}`")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    model = SuperTransformer(space_from_dict(ck["space"]))
    model.load_state_dict(ck["model"])
    return model.eval(), {k: ck[k] for k in ("step", "train", "meta", "log")}


def train_supernet(space: SearchSpace, batches, val_batches: list[tuple[torch.Tensor, torch.Tensor]], out: Path,
                   cfg: TrainConfig, meta: dict[str, Any], progress: Callable[..., Any] | None = None) -> TrainState:
    """Trains (or resumes) a supernet. `batches.sample(B, generator)` yields (x, y); `val_batches`
    is a fixed list. `progress(total, row)` is called every step with (total_steps, row)."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = SuperTransformer(space, seed=cfg.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    st = TrainState(0, model, opt, random.Random(cfg.seed), torch.Generator().manual_seed(cfg.seed), [])
    if (out / CKPT).is_file():
        ck = torch.load(out / CKPT, map_location="cpu", weights_only=False)
        if ck["train"] != asdict(cfg) or ck["space"] != space.to_dict() or ck["meta"].get("data") != meta.get("data"):
            raise UserError(f"{out}: holds a supernet trained with other settings; pass another --out, "
                            f"or the same settings to resume it")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        st.arch_rng.setstate(ck["arch_rng"])
        st.data_gen.set_state(ck["data_gen"])
        st.step, st.log = ck["step"], ck["log"]
    largest, smallest = space.largest(), space.smallest()
    t0, step0, tokens = time.perf_counter(), st.step, 0
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
        tokens += int((y != PAD).sum())
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
            _save(out, st, cfg, meta)
    model.eval()
    return st


@torch.inference_mode()
def evaluate_loss(model, arch: Arch, batches: list) -> float:
    """Mean cross-entropy (nats) per real label token, without label smoothing."""
    total, n = 0.0, 0
    for x, y in batches:
        logits = run_batch(model, x, arch)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=PAD,
                                 reduction="sum").item()
        n += int((y != PAD).sum())
    return total / n


def resolve_config(preset: str | None, task: str = "lm", **overrides: Any) -> TrainConfig:
    presets = PRESETS[task]
    if preset is not None and preset not in presets:
        raise UserError(f"--preset {preset!r}: choose one of {', '.join(p for p in presets if p != 'default')}")
    base = dict(presets.get("default", {}))
    base.update(presets.get(preset, {}))
    names = {f.name for f in fields(TrainConfig)}
    base.update({k: v for k, v in overrides.items() if v is not None and k in names})
    return TrainConfig(**base)



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
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state["train"] != asdict(cfg):
            raise UserError(f"{ckpt}: a retraining with other settings is in progress; remove it or use the same settings")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["data_gen"])
        start, losses = state["step"], state["losses"]
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
            buf = io.BytesIO()
            torch.save({"step": step + 1, "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "data_gen": gen.get_state(), "losses": losses, "train": asdict(cfg)}, buf)
            atomic_write_bytes(ckpt, buf.getvalue())
        if progress:
            progress(step + 1)
    model.eval()
    return losses
