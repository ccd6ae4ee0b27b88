"""The export stage of the API: a searched arch as a standalone SubTransformer folder, retrained."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.api.progress import Progress, as_progress
from nas.api._common import as_archs
from nas.search.budget import Budget
from space import Arch, Workload
from space.memory import inference_memory
from space.files import atomic_write_json
from space.errors import UserError
from latency.protocol import BACKENDS
from supernet.card import ModelCard, OnnxSummary, RetrainSummary
from supernet.config import RETRAIN_MODES


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    card: ModelCard

    @property
    def arch(self) -> Arch:
        return self.card.arch


def export(run: str | Path | None = None, *, out: str | Path, rank: int = 1, supernet: str | Path | None = None,
           arch: str | Path | Arch | None = None, onnx: bool = False) -> ExportResult:
    """Writes a standalone SubTransformer folder (config.json with the typed card, model.safetensors
    at the arch's precision, README.md): the `rank`-th arch of a search run, or any `arch` of a
    `supernet`. `onnx`: also model.onnx, the forward graph, checked against PyTorch."""
    from nas.search.report import ranked
    from supernet.checkpoint import load_supernet, read_record
    from supernet.subnet import extract, save
    if run is not None:
        if supernet is not None or arch is not None:
            raise UserError("export: give a search RUN folder, or --supernet DIR with --arch FILE, not both")
        if not isinstance(rank, int) or rank < 1:
            raise UserError(f"--rank {rank!r}: must be 1 or more")
        rec, chosen, row = ranked(run, rank)
        supernet = rec.supernet
        from nas.search.report import bound_of
        tokens = row.get("tokens")
        fields = dict(run=str(Path(run).resolve()), rank=rank, loss=float(row["loss"]), hardware=rec.hardware,
                      loss_tokens=int(tokens) if tokens is not None and tokens == tokens else None,
                      workload=rec.workload, latency_s=float(row["latency_s"]), latency_bound_s=float(bound_of(row)),
                      confidence=rec.confidence, latency_source=rec.latency_source, runtime=rec.runtime,
                      latency_budget_s=rec.latency_budget_s, memory_budget_bytes=rec.memory_budget_bytes,
                      memory_bytes=inference_memory(chosen, rec.workload).total)
    elif supernet is not None and arch is not None:
        archs = as_archs(arch)
        if len(archs) != 1:
            raise UserError(f"{arch}: holds {len(archs)} archs; export takes exactly one")
        chosen, fields = archs[0], {}
    else:
        raise UserError("export: give a search RUN folder, or --supernet DIR with --arch FILE")
    from supernet.corpus.tokenizer import save_beside
    record = read_record(supernet)
    model, _ = load_supernet(supernet)
    model.require(chosen)
    tokenizer = save_beside(record.tokenizer, out)  # tokenizer.json beside the model (not for bytes)
    if "workload" not in fields and record.space.get("workload"):  # what latency means for this space
        fields["workload"] = Workload.from_dict(record.space["workload"], f"{supernet}: space workload")
    card = ModelCard(arch=chosen, params=0, task=record.task, data=record.data, tokenizer=tokenizer,
                     supernet=str(Path(supernet).resolve()), **fields)
    sub = extract(model, chosen)
    folder = save(sub, out, card)
    from supernet.subnet import load
    if onnx:
        from supernet.onnx_export import export_onnx
        exported = load(folder)
        graph = export_onnx(exported, folder, length=exported.card.work().seq_len)
        save(exported, folder, exported.card.replace(onnx=OnnxSummary(**graph.to_dict())))
    return ExportResult(folder, load(folder).card)


@dataclass(frozen=True)
class RetrainResult:
    folder: Path  # where the retrained model was saved
    mode: str
    steps: int
    val_loss_inherited: float  # nats/token before retraining
    val_loss: float  # after
    measured: Any  # latency.measure.Measurement, on this machine
    card: ModelCard
    translation: dict[str, float] | None = None  # bleu, chrf on test pairs
    classification: dict[str, float] | None = None  # accuracy, loss on every test window

    @property
    def perplexity(self) -> float:
        return math.exp(self.val_loss)


def retrain(model_dir: str | Path, *, mode: str = "finetune", steps: int = 500, lr: float | None = None,
            batch_size: int | None = None, seq_len: int | None = None, sentences: int = 500, seed: int = 0,
            out: str | Path | None = None, device: str = "auto", precision: str | None = None,
            progress: Progress | bool = True) -> RetrainResult:
    """Retrains an exported SubTransformer (`scratch`: fresh weights, as HAT; `finetune`: from the
    inherited weights; `distill`: inherited weights taught by the supernet's largest arch) on
    `device` in `precision`, checkpointed and resumable; then scores it and measures its latency,
    on the hardware it was searched for when this machine has it (else it says where)."""
    from supernet.corpus.tokenizer import load_beside
    from supernet.device import resolve_device, resolve_precision
    from supernet.train import Runtime
    from latency.measure import measure
    from supernet.checkpoint import load_supernet
    from supernet.config import resolve_config
    from supernet.evaluate import Evaluator
    from supernet.subnet import load, save
    from supernet.tasks import load_task_data, task_for
    from supernet.train import run_batch, train_fixed
    if mode not in RETRAIN_MODES:
        raise UserError(f"--mode {mode!r}: choose one of {', '.join(RETRAIN_MODES)}")
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    model = load(model_dir)
    card: ModelCard = model.card
    task = card.task or task_for(model.arch)
    translation = task == "translation"
    if mode == "distill" and not card.supernet:
        raise UserError(f"{model_dir}: its card names no supernet to distill from; use --mode finetune")
    # the task's defaults (batch, label smoothing); a language model from scratch takes its supernet's
    # 3e-3, everything else 1e-3 (translation never learns to copy at 3e-3: supernet/config.py)
    default_lr = 3e-3 if mode == "scratch" and not translation else 1e-3
    seq_len = seq_len or (model.arch.max_len if task == "classify" else 128)
    cfg = resolve_config(None, task, steps=steps, batch_size=batch_size, seq_len=min(seq_len, model.arch.max_len),
                         lr=lr or default_lr, warmup=min(50, steps // 10 + 1), seed=seed, eval_every=10**9,
                         ckpt_every=50)
    tok = load_beside(card.tokenizer, model_dir)
    td = load_task_data(task, card.data, max_len=model.arch.max_len, seq_len=cfg.seq_len,
                        batch_size=cfg.batch_size, eval_batches=8, tokenizer=tok)
    target = Path(out) if out else Path(model_dir) / f"retrained-{mode}"
    target.mkdir(parents=True, exist_ok=True)
    model.to(dev)
    before = Evaluator(model, td.val, precision=prec).loss(model.arch)
    if mode == "scratch":
        model.reset_parameters(seed)
    teacher = None
    if mode == "distill":
        sup, _ = load_supernet(card.supernet)
        sup.to(dev)
        largest = sup.space.largest()
        teacher = lambda x: run_batch(sup, x, largest)  # noqa: E731
    p = as_progress(progress)
    with p.task(f"retrain ({mode})", steps, unit="step") as bar:
        train_fixed(model, td.train, cfg, progress=lambda s: bar.update(s), teacher=teacher,
                    ckpt=target / "retrain.safetensors", runtime=Runtime(device=dev, precision=prec))
    after = Evaluator(model, td.val, precision=prec).loss(model.arch)
    result: dict[str, Any] = {"mode": mode, "steps": steps, "val_loss_inherited": before, "val_loss": after,
                              "perplexity": math.exp(after)}
    scores = classified = None
    if translation:
        from supernet.tasks import evenly_spaced, parallel_corpus
        from supernet.translate import score_translation
        pairs = evenly_spaced(parallel_corpus(card.data).test, sentences)
        with p.task("translate test pairs", len(pairs), unit="pair") as bar:
            sc = score_translation(model.arch, model.weights(), pairs, progress=bar.advance, tokenizer=tok)
        scores = {"bleu": sc.bleu, "chrf": sc.chrf, "pairs": sc.sentences}
        result.update(bleu=sc.bleu, chrf=sc.chrf, bleu_pairs=sc.sentences, decoding=sc.decoding)
    if task == "classify":  # the final table's figures: every window of the test split
        from supernet.evaluate import accuracy
        test = load_task_data(task, card.data, max_len=model.arch.max_len, seq_len=cfg.seq_len,
                              batch_size=cfg.batch_size, eval_batches=None, split="test", tokenizer=tok).val
        classified = {"accuracy": accuracy(model, None, test, prec),
                      "loss": Evaluator(model, test, precision=prec).loss(model.arch), "texts": sum(len(y) for _, y in test)}
        result.update(test_accuracy=classified["accuracy"], test_loss=classified["loss"], test_texts=classified["texts"])
    model.cpu()
    m = measure([model.arch], card.work(), card.hardware)[0]
    result.update(measured_s=m.seconds, measured_raw_s=m.raw_s, measured_spread=m.spread, measured_on=m.device_name,
                  measured_threads=m.threads, measured_workload=m.workload, measured_scale=m.scale,
                  measured_note=m.note, trained_on=str(dev), precision=prec)
    summary = RetrainSummary(**result)
    new_card = card.replace(retrain=summary)
    if card.tokenizer and card.tokenizer.get("file"):
        from supernet.corpus.tokenizer import TOKENIZER_FILE
        (target / TOKENIZER_FILE).write_text((Path(model_dir) / card.tokenizer["file"]).read_text())
    save(model, target, new_card)
    atomic_write_json(target / "retrain.json", {**summary.to_dict(), **{k: getattr(card, k) for k in (
        "latency_s", "latency_source", "runtime", "latency_budget_s", "hardware") if getattr(card, k) is not None}})
    return RetrainResult(target, mode, steps, before, after, m, new_card, scores, classified)


@dataclass(frozen=True)
class MeasureResult:
    """An exported model timed as a user would: raw wall clock, the workload of its card."""

    folder: Path
    median_s: float  # raw wall-clock median of the rounds
    spread: float  # relative interquartile range of the rounds
    samples: tuple[float, ...]
    device_name: str
    threads: int
    workload: str
    backend: str
    hardware: str | None  # the hardware its card was searched for
    predicted_s: float | None  # the card's point prediction
    bound_s: float | None  # the card's upper bound (at its confidence)
    budget_s: float | None
    note: str = ""  # when the device timed is not the one the model was searched for
    prefill_s: float | None = None  # a generation workload: time to first token (raw median, timed on its own)
    decode_per_token_s: float | None = None  # (median - prefill) / tokens decoded after the first call

    @property
    def within_budget(self) -> bool | None:
        return None if self.budget_s is None else Budget(self.budget_s).admits(self.median_s)


def measure(model_dir: str | Path, *, hardware: str | None = None, rounds: int = 15, warmup: int = 5,
            threads: int | None = None, backend: str = "torch", workload: str | None = None) -> MeasureResult:
    """Times an exported model in a process of its own, wall clock, on the device of the hardware it
    was searched for when this machine has it (else its CPU, said in `note`), with that hardware's
    thread count; returns the raw median and spread beside the card's prediction, bound and budget."""
    import json
    import subprocess
    import sys

    from latency.measure import target_device
    from supernet.subnet import load
    if rounds < 3 or warmup < 0:
        raise UserError("measure: at least 3 rounds and no negative warm-up")
    if backend not in BACKENDS:
        raise UserError(f"--backend {backend!r}: choose torch or onnxruntime")
    card: ModelCard = load(model_dir).card
    hardware = hardware or card.hardware
    device, note = target_device(hardware)
    if threads is None and hardware:
        from latency.hardware import load_hardware
        threads = load_hardware(hardware).threads
    base = card.work()
    if backend == "onnxruntime":  # a graph of one forward pass of fixed length
        if device != "cpu":
            raise UserError("--backend onnxruntime times on the CPU; drop it for a GPU model")
        base = Workload(1, card.onnx.length if card.onnx else base.seq_len, 0)
    w = Workload.parse(workload, base=base) if workload else base
    cmd = [sys.executable, "-m", "latency.stopwatch", str(model_dir), "--workload", str(w), "--device", device,
           "--rounds", str(rounds), "--warmup", str(warmup), "--backend", backend]
    if threads:
        cmd += ["--threads", str(threads)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"measure {model_dir}: the timing process failed ({last})")
    got = json.loads(r.stdout.strip().splitlines()[-1])
    same = hardware == card.hardware and str(w) == str(card.work())  # the card's prediction is for its workload
    if same and card.latency_s is not None and card.runtime not in (None, "eager"):  # the stopwatch runs eager PyTorch: not what the card predicts
        same = False
        note = ((note + "; ") if note else "") + (
            f"timed in eager PyTorch; the card's {card.latency_s * 1e3:.2f} ms is for the {card.runtime} runtime "
            "(capturing the model in CUDA graphs is not built yet), so no budget verdict")
    return MeasureResult(Path(model_dir), got["median_s"], got["spread"], tuple(got["samples"]), got["device_name"],
                         got["threads"], got["workload"], backend, hardware,
                         card.latency_s if same else None, card.latency_bound_s if same else None,
                         card.latency_budget_s if same else None, note, got.get("prefill_s"),
                         got.get("decode_per_token_s"))
