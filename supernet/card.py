"""The exported model's card: one typed, versioned record in the model folder's `config.json`
(the arch, where the model came from, what it was predicted and measured to do), and the
human-readable `README.md` rendered from it."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from space import Arch, Workload, analytic_cost
from space.display import arch_summary, human
from space.record import Record


@dataclass(frozen=True)
class ModelCard(Record):
    FORMAT = "hwnas-subtransformer"
    VERSION = 3  # version 1 (hwnas 0.1) kept an untyped "meta" mapping; 3: `loss_tokens`
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
    workload: dict[str, int] | None = None  # ... under this workload
    latency_s: float | None = None  # predicted latency there (point prediction)
    latency_rel_std: float | None = None  # the predictor's relative std for it
    latency_bound_s: float | None = None  # the upper bound the budget was checked against ...
    confidence: float | None = None  # ... at this confidence
    latency_source: str | None = None  # measured | calibrated | analytic
    latency_budget_s: float | None = None
    retrain: dict[str, Any] | None = None  # what `nas retrain` measured
    onnx: dict[str, Any] | None = None  # the ONNX graph beside it: file, precision, length, max_abs_diff

    @classmethod
    def _decode(cls, body: dict[str, Any], where: str) -> dict[str, Any]:
        return {**body, "arch": Arch.from_dict(body["arch"], where=f"{where}: arch")}

    @classmethod
    def _upgrade(cls, body: dict[str, Any], version: int, where: str) -> dict[str, Any]:
        if version == 2:
            return body  # lacks only `loss_tokens`
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
            return Workload.from_dict(self.workload)
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
                     f"({card.latency_source} predictor); budget {card.latency_budget_s * 1e3:g} ms"
                     + (f", {card.budget_used:.0%} of it used" if card.budget_used is not None else ""))
    if card.loss is not None:
        on = f" on {card.loss_tokens:,} tokens" if card.loss_tokens else ""
        lines.append(f"- validation loss with inherited supernet weights: {card.loss:.4f} nats/token{on} "
                     f"(perplexity {math.exp(card.loss):.2f})")
    if card.retrain:
        r = card.retrain
        lines.append(f"- retrained ({r.get('mode')}, {r.get('steps')} steps): validation loss {r.get('val_loss', float('nan')):.4f}")
    if card.onnx:
        o = card.onnx
        lines.append(f"- ONNX: {o['file']} ({o['precision']}, sequences of {o['length']}; logits within "
                     f"{o['max_abs_diff']:.2g} of PyTorch's)")
    if card.supernet:
        lines.append(f"- extracted from the supernet in {card.supernet}" + (f" (search run {card.run}, rank {card.rank})"
                                                                             if card.run else ""))
    lines += ["", "Load it: `from supernet.subnet import load; model = load('THIS_FOLDER')`.", "",
              "```yaml", arch.to_yaml().rstrip(), "```", ""]
    return "\n".join(lines)
