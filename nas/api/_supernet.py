"""The supernet stage of the API: train one, find the one to search with, score archs with it."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from typing import TYPE_CHECKING

from nas.api._common import as_archs, as_space
from nas.api.progress import Progress, as_progress
from space import Arch, SearchSpace, analytic_cost
from space.errors import UserError
from space.options import check_int
from supernet.config import TrainConfig, resolve_config

if TYPE_CHECKING:  # torch-backed modules load when a function needs them: a bad argument fails fast
    from supernet.checkpoint import SupernetRecord
    from supernet.evaluate import Evaluator
    import torch


def has_supernet(folder: str | Path) -> bool:
    from supernet.checkpoint import FILE, LEGACY
    return (Path(folder) / FILE).is_file() or (Path(folder) / LEGACY).is_file()


def read_record(folder: str | Path) -> "SupernetRecord":
    from supernet.checkpoint import read_record
    return read_record(folder)


def default_supernet_dir(space_name: str) -> Path:
    return Path("runs") / f"supernet-{space_name}"


# ---- training ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainPlan:
    """A checked training request: everything validated, nothing trained yet."""

    space: SearchSpace
    task: str
    folder: Path
    config: TrainConfig
    data: Any  # the reference the record keeps: None, a path, [src, tgt]
    resume_from: int  # steps already in the folder's checkpoint (0: a new run)
    tokenizer: str  # the tokenizer asked for (bytes, bpe:N, a file); a resume keeps its own
    device: str = "auto"
    precision: str | None = None  # None: the device's default
    grad_accum: int = 1
    checkpointing: bool = False
    memory: Any = None  # supernet.memory.MemoryEstimate of this training, per rank


@dataclass(frozen=True)
class TrainResult:
    folder: Path
    record: "SupernetRecord"
    resumed_from: int
    corpus: str  # what it trained on, described
    device: str = "cpu"
    precision: str = "fp32"
    ranks: int = 1

    @property
    def val_largest(self) -> float:
        return self.record.log[-1]["val_largest"] if self.record.log else math.nan

    @property
    def val_smallest(self) -> float:
        return self.record.log[-1]["val_smallest"] if self.record.log else math.nan


_REQUEST_FIELDS = ("space", "out", "data", "src", "tgt", "preset", "config", "tokenizer", "device", "precision",
                   "grad_accum", "checkpointing", "check_memory")


@dataclass(frozen=True)
class TrainRequest:
    """What a supernet training is asked, each field once: `plan_training` checks it, `nas
    train-supernet` maps its options onto it. `settings`: TrainConfig fields over the preset (steps,
    batch_size, seq_len, lr, sampling, label_smoothing, seed, n_random, ...; None: the preset's);
    `config` replaces preset and settings whole. `tokenizer`: bytes, bpe:N or a tokenizer.json
    (default: the space's). `device`: auto (CUDA when present), cpu, cuda, cuda:N or mps;
    `precision`: fp32, bf16 or fp16 (default bf16 on a CUDA device that has it, else fp32)."""

    space: str | Path | SearchSpace = "lm-shakespeare"
    out: str | Path | None = None
    data: str | Path | None = None
    src: str | Path | None = None
    tgt: str | Path | None = None
    preset: str | None = None
    config: TrainConfig | None = None
    tokenizer: str | None = None
    device: str = "auto"
    precision: str | None = None
    grad_accum: int = 1
    checkpointing: bool = False
    check_memory: bool = True
    settings: dict[str, Any] = field(default_factory=dict)


def as_train_request(space: Any = "lm-shakespeare", **fields: Any) -> TrainRequest:
    """A TrainRequest from one or from its fields; any other keyword is a TrainConfig setting."""
    own = {k: v for k, v in fields.items() if k in _REQUEST_FIELDS}
    given = fields.pop("settings", None) or {}
    settings = {**given, **{k: v for k, v in fields.items() if k not in _REQUEST_FIELDS}}
    if isinstance(space, TrainRequest):
        return replace(space, **own, settings={**space.settings, **settings})
    return TrainRequest(space, **own, settings=settings)


def plan_training(space: Any = "lm-shakespeare", **fields: Any) -> TrainPlan:
    """Checks a training request (a TrainRequest, or its fields and TrainConfig settings) before any
    long work: the space and its task, the data files, the settings, the tokenizer against the
    space's vocabulary, the device and precision, that the training fits the device's memory, and
    that an existing run in `out` has the same settings (it then resumes)."""
    r = as_train_request(space, **fields)
    space, out, data, src, tgt, preset, config = r.space, r.out, r.data, r.src, r.tgt, r.preset, r.config
    tokenizer, device, precision, grad_accum = r.tokenizer, r.device, r.precision, r.grad_accum
    checkpointing, check_memory, settings = r.checkpointing, r.check_memory, dict(r.settings)
    from supernet.corpus.tokenizer import parse_spec
    from supernet.device import resolve_device, resolve_precision
    from supernet.tasks import check_data, resolve_data, task_for
    space = as_space(space)
    task = task_for(space)
    if task == "translation":
        if data:
            raise UserError(f"--data: space {space.name!r} translates; give --src FILE --tgt FILE instead")
        if (src is None) != (tgt is None):
            raise UserError("give both --src FILE and --tgt FILE (aligned line by line), or neither for the "
                            "Folio -> modern corpus")
        data_ref = resolve_data(task, [str(src), str(tgt)] if src else None)
    else:
        if src or tgt:
            what = "a language model" if task == "lm" else "a classifier"
            raise UserError(f"--src/--tgt: space {space.name!r} is {what}; give --data PATH instead")
        data_ref = resolve_data(task, str(data) if data else None)
    check_data(task, data_ref)
    if config is None:
        if settings.get("sampling") == "uniform" and settings.get("distill") is None:
            settings["distill"] = False  # HAT's uniform sampling has no teacher
        config = resolve_config(preset, task, **settings)
    if task != "translation" and config.copy_warmup:
        raise UserError(f"--copy-warmup: identity pairs are a translation warm-up; space {space.name!r} is a "
                        f"{space.kind} space, drop it")
    if task != "translation" and config.seq_len > space.max_len:
        raise UserError(f"--seq-len {config.seq_len} exceeds the space's max_len {space.max_len}")
    check_int(grad_accum, "--grad-accum")
    spec = tokenizer or space.tokenizer
    kind, arg = parse_spec(spec, space.vocab_size)
    if kind == "bytes" and space.vocab_size != 259 or kind == "bpe" and arg != space.vocab_size:
        from supernet.corpus.tokenizer import check_vocab
        check_vocab(259 if kind == "bytes" else arg, space.vocab_size, spec, space.name)
    folder = Path(out) if out else default_supernet_dir(space.name)
    if config.init_from:
        source = Path(config.init_from).expanduser().resolve()  # the record names it from anywhere
        if not has_supernet(folder):  # a resume never reads the source again
            _check_init_from(source, task, spec, space)
        config = replace(config, init_from=str(source))
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    resume_from = 0
    if has_supernet(folder):
        old = read_record(folder)
        if (old.train, old.space, old.task, old.data) != (config, space.to_dict(), task, data_ref):
            diff = [k for k, a, b in (("settings", old.train, config), ("space", old.space, space.to_dict()),
                                      ("task", old.task, task), ("data", old.data, data_ref)) if a != b]
            raise UserError(f"{folder}: holds a supernet trained with other {', '.join(diff)}; pass another --out, "
                            f"or the same settings to resume it")
        resume_from = old.step
    memory = _memory(space, task, config, dev, prec, grad_accum, checkpointing, check_memory)
    return TrainPlan(space, task, folder, config, data_ref, resume_from, spec, str(dev), prec, grad_accum,
                     checkpointing, memory)


def _check_init_from(folder: Path, task: str, spec: str, space: SearchSpace) -> None:
    """A warm start needs a supernet of the same task and kind of tokenizer (its embeddings mean the
    same ids: a BPE training then reuses the source's tokenizer instead of training its own)."""
    from supernet.corpus.tokenizer import parse_spec
    if not has_supernet(folder):
        raise UserError(f"--init-from {folder}: no supernet there (no {folder}/supernet.safetensors)")
    old = read_record(folder)
    if old.task != task:
        raise UserError(f"--init-from {folder}: a {old.task} supernet; space {space.name!r} trains a {task}")
    ours = "bytes" if parse_spec(spec, space.vocab_size)[0] == "bytes" else "a BPE"
    theirs = "bytes" if old.tokenizer.get("type") == "byte" else "a BPE"
    if ours != theirs:
        raise UserError(f"--init-from {folder}: its tokenizer is {theirs}, this training's is {ours}; "
                        f"warm starts need the same tokenizer")
    if old.space.get("vocab_size") != space.vocab_size:
        raise UserError(f"--init-from {folder}: vocabulary of {old.space.get('vocab_size')} ids, space {space.name!r} "
                        f"has {space.vocab_size}; warm starts need the same tokenizer")


def _memory(space: SearchSpace, task: str, cfg: TrainConfig, device, precision: str, grad_accum: int,
            checkpointing: bool, check: bool):
    """The per-rank estimate; a clear stop when it cannot fit the device."""
    import os

    from supernet.device import memory_available
    from supernet.memory import estimate, supernet_parameters
    world = int(os.environ.get("WORLD_SIZE", "1"))
    micro = max(1, cfg.batch_size // (world * grad_accum))
    seq = cfg.seq_len if task == "lm" else space.max_len
    est = estimate(space, supernet_parameters(space), seq, micro, precision, checkpointing)
    have = memory_available(device) if check else None
    if have is not None and est.total > 0.9 * have:
        raise UserError(f"training needs about {est.describe()}, but {device} has {have / 2**30:.2f} GiB free; "
                        f"add --grad-accum {2 * grad_accum} (smaller micro-batches), --checkpointing (recompute "
                        f"activations), a smaller --batch-size, or a bigger device")
    return est


def run_training(plan: TrainPlan, progress: Progress | bool = True, threads: int | None = None) -> TrainResult:
    """Trains (or resumes, or finds finished) the planned supernet; under `torchrun`, as one rank of
    a DDP training (rank 0 reports progress and writes the checkpoints)."""
    import torch
    from supernet.checkpoint import read_record as record_of
    from supernet.corpus.tokenizer import tokenizer_from_dict
    from supernet.device import describe, init_distributed, slow_precision_note
    from supernet.tasks import load_task_data, make_tokenizer
    from supernet.train import Runtime, train_supernet as train
    if threads:
        torch.set_num_threads(threads)
    dist, device = init_distributed(plan.device)
    p = as_progress(progress) if dist.main else as_progress(False)
    cfg = plan.config
    if plan.resume_from:
        tok = tokenizer_from_dict(record_of(plan.folder).tokenizer)  # a resume keeps its own tokenizer
    elif cfg.init_from:
        tok = tokenizer_from_dict(record_of(cfg.init_from).tokenizer)  # the ids the source's embeddings mean
    else:
        tok = make_tokenizer(plan.tokenizer, plan.task, plan.data, plan.space)
    td = load_task_data(plan.task, plan.data, max_len=plan.space.max_len, seq_len=cfg.seq_len,
                        batch_size=cfg.batch_size, eval_batches=cfg.eval_batches, tokenizer=tok)
    p.note(f"corpus: {td.description}; tokenizer {tok.describe()}")
    p.note(f"device {describe(device)}, precision {plan.precision}"
           + (f", {dist.world} ranks (DDP)" if dist.active else "")
           + (f"; memory needed per rank about {plan.memory.describe()}" if plan.memory else ""))
    slow = slow_precision_note(device, plan.precision)
    if slow:
        p.note(slow)
    if plan.resume_from:
        p.note(f"resuming the run in {plan.folder} at step {plan.resume_from}/{cfg.steps}")
    elif cfg.init_from:
        p.note(f"warm start: weights of the same name and shape from {cfg.init_from}")
    meta = {"task": plan.task, "data": plan.data, "tokenizer": tok.to_dict()}
    rt = Runtime(device=device, precision=plan.precision, grad_accum=plan.grad_accum,
                 checkpointing=plan.checkpointing, dist=dist)
    last: dict[str, Any] = {}
    with p.task("train", cfg.steps, unit="step") as bar:
        def report(total: int, row: dict[str, Any]) -> None:
            last.update(row)
            info = f"loss {row['loss']:.3f}  {row['tokens_per_s']:.0f} tok/s"
            if "val_largest" in last:
                info += f"  val largest {last['val_largest']:.3f} smallest {last['val_smallest']:.3f}"
            bar.update(row["step"], info=info)
        train(plan.space, td.train, td.val, plan.folder, cfg, meta, progress=report, runtime=rt)
    return TrainResult(plan.folder, record_of(plan.folder), plan.resume_from, td.description, str(device),
                       plan.precision, dist.world)


def train_supernet(space: Any = "lm-shakespeare", *, threads: int | None = None, progress: Progress | bool = True,
                   **fields: Any) -> TrainResult:
    """Trains the weight-sharing SuperTransformer of `space` (a language model or a translation
    model, by the space's kind; a TrainRequest, or its fields and TrainConfig settings such as
    steps=, batch_size=, lr=) into `out` (default runs/supernet-SPACE); an unfinished run there
    resumes. Under `torchrun` each process is one DDP rank."""
    return run_training(plan_training(space, **fields), progress, threads)


# ---- the supernet a search uses --------------------------------------------------------------------

def shipped_supernet(space: SearchSpace) -> Path | None:
    """The pre-trained supernet shipped inside the package for `space`, if its definition matches."""
    from configs import config_dir
    folder = config_dir() / "supernets" / space.name
    if not has_supernet(folder):
        return None
    return folder if read_record(folder).space == space.to_dict() else None


@dataclass(frozen=True)
class SupernetChoice:
    folder: Path
    action: str  # "use" | "resume" | "train"
    why: str
    record: SupernetRecord | None = None


def choose_supernet(space: SearchSpace, folder: str | Path | None) -> SupernetChoice:
    """Which supernet a search uses, decided without training anything: the given folder (which
    must hold a supernet of this space), else the user's default folder, else the one shipped
    with hwnas, else the quick one trained into the default folder."""
    from supernet.tasks import check_data, task_for
    if folder is not None:
        folder = Path(folder)
        if not has_supernet(folder):  # a mistyped path must not start a training run
            what = "holds no supernet" if folder.exists() else "does not exist"
            raise UserError(f"--supernet {folder}: {what} ({folder}/supernet.safetensors missing); train one with "
                            f"`nas train-supernet --space {space.name} --out {folder}`, or leave --supernet out "
                            f"to use the default one")
        return _existing(space, folder)
    default = default_supernet_dir(space.name)
    if has_supernet(default):
        return _existing(space, default)
    shipped = shipped_supernet(space)
    if shipped is not None:
        return SupernetChoice(shipped, "use", f"using the pre-trained supernet shipped with hwnas ({shipped}); "
                                              f"train your own with `nas train-supernet`", read_record(shipped))
    check_data(task_for(space), None)
    return SupernetChoice(default, "train", f"no trained supernet in {default}: training the quick one first "
                                            f"(`nas train-supernet --preset quick`, about 10 minutes on 2 CPU cores)")


def _existing(space: SearchSpace, folder: Path) -> SupernetChoice:
    record = read_record(folder)
    if record.space != space.to_dict():
        raise UserError(f"--supernet {folder}: trained for space {record.space.get('name')!r}, whose definition "
                        f"differs from the space searched ({space.name!r}); pass --space matching it")
    if not record.finished:
        return SupernetChoice(folder, "resume", f"the supernet in {folder} is unfinished "
                                                f"({record.step}/{record.train.steps} steps): resuming it", record)
    return SupernetChoice(folder, "use", "", record)


def prepare_supernet(space: SearchSpace, choice: SupernetChoice, progress: Progress | bool = True,
                     device: str = "auto", precision: str | None = None) -> Path:
    """Carries out a choice: trains or resumes when it says so."""
    p = as_progress(progress)
    if choice.why:
        p.note(choice.why)
    if choice.action == "train":
        run_training(plan_training(space, out=choice.folder, preset="quick", device=device, precision=precision), p)
    elif choice.action == "resume":
        rec = choice.record
        run_training(plan_training(space, out=choice.folder, config=rec.train, device=device, precision=precision,
                                   **_data_args(rec)), p)
    return choice.folder


def _data_args(record: SupernetRecord) -> dict[str, Any]:
    if record.data is None:
        return {}
    if record.task == "translation":
        return {"src": record.data[0], "tgt": record.data[1]}
    return {"data": record.data}


# ---- scoring -----------------------------------------------------------------------------------

def supernet_evaluator(folder: str | Path, batches: int | None = None, loaded: Any = None,
                       split: str = "val", device: "str | torch.device" = "cpu", precision: str | None = None,
                       spread: bool = False, context: int | None = None) -> "Evaluator":
    """The scorer a search uses: an Evaluator of the supernet in `folder` on its own data's `split`
    (validation for selection; test only for final tables), on `device` in `precision` (default:
    the device's), scoring many windows of many archs per call. `loaded`: what
    `load_supernet(folder)` returned, when the caller has it already. `spread`: `batches` batches
    drawn from the whole split, every prefix of them spread over it (the search's multi-fidelity
    scorer: `loss(arch, batches=k)` scores the first k); else the split's first `batches`. `context`:
    a language model's windows of that many tokens (default: its training length)."""
    from supernet.checkpoint import load_supernet
    from supernet.device import resolve_device, resolve_precision
    from supernet.evaluate import Evaluator
    from supernet.tasks import supernet_task_data
    dev = resolve_device(device)
    model, record = loaded or load_supernet(folder)
    if spread:
        from supernet.tasks import spread_batches
        val = spread_batches(record, batches or record.train.eval_batches, split=split, context=context)
    else:
        val = supernet_task_data(record, batches, split=split, context=context).val
    return Evaluator(model.to(dev), val, precision=resolve_precision(precision, dev))


@dataclass(frozen=True)
class ArchScore:
    arch: Arch
    loss: float  # mean cross-entropy per token, nats, with inherited weights
    params: int
    translation: dict[str, float] = field(default_factory=dict)  # "BLEU greedy", "chrF beam 4", ...

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)

    @property
    def bits(self) -> float:
        return self.loss / math.log(2)


@dataclass(frozen=True)
class EvalResult:
    scores: tuple[ArchScore, ...]
    tokens: int  # labels scored per arch
    split: str
    pairs: int = 0  # translation: sentences translated per decoding
    task: str = "lm"
    baselines: tuple = ()  # classifiers: supernet.baselines.BaselineScore on the same texts


def evaluate(supernet: str | Path, archs: str | Path | Arch | Sequence[Arch], *, batches: int | None = None,
             split: str = "val", sentences: int = 500, beam: int = 4, device: str = "auto",
             precision: str | None = None, progress: Progress | bool = True, context: int | None = None) -> EvalResult:
    """Loss (and for translation BLEU and chrF of greedy and beam decoding) of archs with inherited
    weights, on the supernet's own data (`split`: val or test); a language model's on windows of
    `context` tokens (default: its training length)."""
    archs = as_archs(archs)
    if not archs:
        raise UserError("evaluate: no archs given")
    if beam < 1 or sentences < 1:
        raise UserError("evaluate: beam and sentences must be at least 1")
    from supernet.checkpoint import load_supernet
    loaded = load_supernet(supernet)
    model, record = loaded
    for a in archs:
        model.require(a)
    ev = supernet_evaluator(supernet, batches, loaded, split=split, device=device, precision=precision,
                            context=context)
    translation = record.task == "translation"
    pairs: list = []
    if translation:
        from supernet.corpus.tokenizer import tokenizer_from_dict
        from supernet.tasks import evenly_spaced, parallel_corpus
        tok = tokenizer_from_dict(record.tokenizer)
        pairs = evenly_spaced(getattr(parallel_corpus(record.data), "test" if split == "test" else "val"), sentences)
    p = as_progress(progress)
    scores = []
    units = len(archs) * (1 + (len(pairs) * (1 + (beam > 1)) if translation else 0))
    with p.task("evaluate", units, unit="item") as bar:
        for a in archs:
            loss = ev.loss(a)
            bar.advance()
            extra: dict[str, float] = {}
            if translation:
                from supernet.translate import score_translation
                weights = model.active_weights(a)
                for k in ([1, beam] if beam > 1 else [1]):
                    sc = score_translation(a, weights, pairs, beam=k, progress=bar.advance, tokenizer=tok)
                    label = "greedy" if k == 1 else f"beam {k}"
                    extra[f"BLEU {label}"], extra[f"chrF {label}"] = sc.bleu, sc.chrf
            if record.task == "classify":
                from supernet.evaluate import accuracy
                extra["accuracy %"] = 100 * accuracy(model, a, ev.batches, ev.precision)
            scores.append(ArchScore(a, loss, analytic_cost(a).params, extra))
    base = ()
    if record.task == "classify":
        from supernet.baselines import supernet_baselines
        base = tuple(supernet_baselines(record, ev.batches))
    return EvalResult(tuple(scores), ev.tokens, split, len(pairs), record.task, base)
