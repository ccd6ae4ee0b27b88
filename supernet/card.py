"""The exported model's card: one typed, versioned record in the model folder's `config.json`
(the arch, where the model came from, what it was predicted and measured to do), and the
human-readable `README.md` rendered from it."""
from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar

from space import Arch, Workload, analytic_cost
from space.display import arch_summary, human
from space.files import check_keys
from space.record import Record, RecordError

S = TypeVar("S", bound="_Sub")


class _Sub:
    """A card's sub-record: a frozen dataclass written as a JSON object without its unset (None)
    fields, read back refusing unknown or missing keys."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls: type[S], d: Any, where: str) -> S:
        names = [f.name for f in fields(cls)]
        required = [f.name for f in fields(cls) if f.default is MISSING]
        return cls(**check_keys(d, where, names, required, error=RecordError))


@dataclass(frozen=True)
class RetrainSummary(_Sub):
    """What `nas retrain` measured: losses (nats/token, validation split), the stopwatch's latency."""
    mode: str  # scratch | finetune | distill
    steps: int
    val_loss: float
    val_loss_inherited: float | None = None  # before retraining
    perplexity: float | None = None
    bleu: float | None = None  # translation: corpus BLEU and chrF on `bleu_pairs` test pairs
    chrf: float | None = None
    bleu_pairs: int | None = None
    decoding: str | None = None
    test_accuracy: float | None = None  # a classifier: accuracy and loss (nats/text) on every test window
    test_loss: float | None = None
    test_texts: int | None = None
    measured_s: float | None = None  # the stopwatch's latency (scaled where `measured_scale` says)
    measured_raw_s: float | None = None  # raw wall clock
    measured_spread: float | None = None
    measured_on: str | None = None
    measured_threads: int | None = None
    measured_workload: str | None = None
    measured_scale: float | None = None
    measured_note: str | None = None
    trained_on: str | None = None  # the device
    precision: str | None = None  # of the retraining


@dataclass(frozen=True)
class OnnxSummary(_Sub):
    """The ONNX graph beside the model (supernet.onnx_export.OnnxExport.to_dict())."""
    file: str
    precision: str  # of the graph: fp32 or int8
    length: int  # the sequence length it takes
    max_abs_diff: float  # of its logits against PyTorch's
    opset: int | None = None


@dataclass(frozen=True)
class ModelCard(Record):
    FORMAT = "hwnas-subtransformer"
    VERSION = 5  # version 1 (hwnas 0.1) kept an untyped "meta" mapping; 3: `loss_tokens`; 4: `memory_*`; 5: `runtime`
    WHAT = "exported model config"
    HINT = "export the model again with `nas export`"

    arch: Arch
    params: int
    task: str | None = None  # "lm" | "translation"
    data: Any = None  # what the supernet was trained on: None (embedded corpus), a path, [src, tgt]
    tokenizer: dict[str, Any] | None = None
    supernet: str | None = None  # the folder it was extracted from
    run: str | None = None  # the search run it was ranked in ...
    rank: int | None = None  # ... at this place
    loss: float | None = None  # validation loss with inherited weights (nats/token) ...
    loss_tokens: int | None = None  # ... measured on this many validation tokens (None: not recorded)
    hardware: str | None = None  # the hardware it was searched for ...
    workload: Workload | None = None  # ... under this workload
    latency_s: float | None = None  # predicted latency there (point prediction)
    latency_rel_std: float | None = None  # the predictor's relative std for it
    latency_bound_s: float | None = None  # the upper bound the budget was checked against ...
    confidence: float | None = None  # ... at this confidence
    latency_source: str | None = None  # measured | calibrated | kernels | analytic
    runtime: str | None = None  # what the latency is for: eager | cuda-graphs
    latency_budget_s: float | None = None
    memory_bytes: int | None = None  # peak inference memory for the workload (space.memory) ...
    memory_budget_bytes: int | None = None  # ... and the budget it was searched within, if any
    retrain: RetrainSummary | None = None  # what `nas retrain` measured
    onnx: OnnxSummary | None = None  # the ONNX graph beside it

    @classmethod
    def _decode(cls, body: dict[str, Any], where: str) -> dict[str, Any]:
        out = {**body, "arch": Arch.from_dict(body["arch"], where=f"{where}: arch")}
        for name, sub in (("workload", Workload), ("retrain", RetrainSummary), ("onnx", OnnxSummary)):
            if body.get(name) is not None:
                out[name] = sub.from_dict(body[name], where=f"{where}: {name}")
        return out

    @classmethod
    def _upgrade(cls, body: dict[str, Any], version: int, where: str) -> dict[str, Any]:
        if version in (2, 3, 4):  # lacks only `loss_tokens`, `memory_*` and `runtime`
            if body.get("latency_s") is not None and "runtime" not in body:
                body = {**body, "runtime": "eager"}  # every latency before runtimes was eager PyTorch's
            return body
        return super()._upgrade(body, version, where)

    @property
    def arch_id(self) -> str:
        return self.arch.id

    @property
    def budget_used(self) -> float | None:
        """The latency bound the budget was checked against / the budget (1.0: all of it)."""
        if self.latency_bound_s is None or not self.latency_budget_s:
            return None
        return self.latency_bound_s / self.latency_budget_s

    def work(self) -> Workload:
        """The workload its latency means (the card's, else a prompt of 64 and 32 decode steps)."""
        if self.workload:
            return self.workload
        if self.arch.kind == "encoder":
            return Workload(1, min(64, self.arch.max_len), 0)
        seq = min(64, self.arch.max_len // 2)
        return Workload(1, seq, min(32, self.arch.max_len - seq))


def render(card: ModelCard) -> str:
    """The README.md of an exported model."""
    arch, w = card.arch, card.work()
    cost = analytic_cost(arch, w)
    lines = [f"# SubTransformer {arch.id}", "",
             f"- layout: {arch_summary(arch)}",
             f"- precision: {arch.precision}" + (" (dynamic quantization: int8 Linear weights, stored as such)"
                                                 if arch.precision == "int8" else ""),
             f"- parameters: {cost.params:,} ({human(cost.params)})",
             f"- FLOPs under workload {w}: {human(cost.flops)}; bytes moved {human(cost.bytes, 'B')}"]
    if card.latency_s is not None:
        bound = (f", at most {card.latency_bound_s * 1e3:.3f} ms at {card.confidence:.0%} confidence"
                 if card.latency_bound_s is not None and card.confidence else "")
        lines.append(f"- predicted latency on {card.hardware}: {card.latency_s * 1e3:.3f} ms{bound} "
                     f"({card.latency_source} predictor" + (f", {card.runtime} runtime" if card.runtime else "")
                     + f"); budget {card.latency_budget_s * 1e3:g} ms"
                     + (f", {card.budget_used:.0%} of it used" if card.budget_used is not None else ""))
    if card.memory_bytes is not None:
        budget = (f" (budget {card.memory_budget_bytes / 1e6:.3g} MB, {card.memory_bytes / card.memory_budget_bytes:.0%} "
                  "used)" if card.memory_budget_bytes else "")
        lines.append(f"- inference memory under workload {w}: {card.memory_bytes / 1e6:.3g} MB (weights, decode "
                     f"state, activations){budget}")
    if card.loss is not None:
        on = f" on {card.loss_tokens:,} tokens" if card.loss_tokens else ""
        lines.append(f"- validation loss with inherited supernet weights: {card.loss:.4f} nats/token{on} "
                     f"(perplexity {math.exp(card.loss):.2f})")
    if card.retrain:
        r = card.retrain
        lines.append(f"- retrained ({r.mode}, {r.steps} steps): validation loss {r.val_loss:.4f}")
    if card.onnx:
        o = card.onnx
        lines.append(f"- ONNX: {o.file} ({o.precision}, sequences of {o.length}; logits within "
                     f"{o.max_abs_diff:.2g} of PyTorch's)")
    if card.supernet:
        lines.append(f"- extracted from the supernet in {card.supernet}" + (f" (search run {card.run}, rank {card.rank})"
                                                                             if card.run else ""))
    lines += ["", "Load it: `from supernet.subnet import load; model = load('THIS_FOLDER')`.", "",
              "```yaml", arch.to_yaml().rstrip(), "```", ""]
    return "\n".join(lines)
