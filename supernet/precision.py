"""Running a model at its arch's precision, and storing it at that precision.

- int8: dynamic quantization of every Linear layer (what `torch.ao.quantization.quantize_dynamic`
  does to nn.Linear): weights in int8, symmetric per output channel (scale = max |w| / 127),
  activations quantized per call, int32 accumulation (fbgemm/onednn kernels on x86, qnnpack on
  ARM). Embeddings, LayerNorms, the attention core and the tied output layer stay fp32.
  Measured on this project's CPU (bench/precision.py): faster than fp32 for prompt-length inputs,
  slower for single-token decode steps of small layers; weight-only int8 (int8 weights times an
  fp32 activation) and bf16 were several times slower than fp32 there, so the shipped CPU profile
  offers fp32 and int8.
- bf16 / fp16: every floating-point weight cast to half precision, activations computed in it.

Training is always fp32 (quantized kernels have no backward): the precision applies when a model
is evaluated, exported and run. Weights are prepared once per arch (quantizing is not free) by the
caller that scores or runs the model.
"""
from __future__ import annotations

from typing import Any

import torch

LINEARS = ("q", "k", "v", "o", "fc1", "fc2", "xq", "xk", "xv", "xo")
HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}


def int8_weight(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 weights, per-row fp32 scales): symmetric per output channel, zero point 0."""
    scale = (w.detach().abs().amax(dim=1).float() / 127.0).clamp_min(1e-12)
    q = torch.round(w.detach().float() / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q, scale


def pack_int8(w: torch.Tensor, b: torch.Tensor | None) -> Any:
    """The prepacked int8 weight of one Linear, for torch.ops.quantized.linear_dynamic."""
    import warnings
    q, scale = int8_weight(w)
    with warnings.catch_warnings():  # torch 2.13 flags quantized tensor creation as deprecated; the kernels remain
        warnings.simplefilter("ignore")
        qw = torch._make_per_channel_quantized_tensor(q, scale.double(), torch.zeros(len(scale), dtype=torch.long), 0)
        return torch.ops.quantized.linear_prepack(qw, None if b is None else b.detach().float())


def prepare(weights: dict[str, Any], precision: str, rounded_only: bool = False) -> dict[str, Any]:
    """`functional.forward` weights (a dict per stack) at `precision`; fp32: unchanged.
    `rounded_only` (bf16/fp16): the weights rounded to the precision but kept in fp32, so the
    arithmetic stays fp32. A CPU scores half-precision archs this way: its half-precision kernels
    are several times slower than fp32, and the loss differs from true half-precision arithmetic by
    far less than archs differ from each other."""
    if precision == "fp32":
        return weights
    if rounded_only and precision in HALF:
        return {stack: {n: ([{k: _round(t, precision) for k, t in b.items()} for b in v] if n == "layers"
                            else _round(v, precision)) for n, v in w.items()} for stack, w in weights.items()}
    out: dict[str, Any] = {}
    for stack, w in weights.items():
        new = {n: _cast(t, precision) for n, t in w.items() if n != "layers"}
        blocks = []
        for block in w["layers"]:
            b: dict[str, Any] = {}
            for name, t in block.items():
                base, _, kind = name.rpartition(".")
                if precision == "int8" and base in LINEARS:
                    if kind == "weight":
                        b[f"{base}.packed"] = pack_int8(t, block.get(f"{base}.bias"))
                    continue  # the bias rides in the packed weight
                b[name] = _cast(t, precision)
            blocks.append(b)
        new["layers"] = blocks
        out[stack] = new
    return out


def _round(t: torch.Tensor, precision: str) -> torch.Tensor:
    return t.detach().to(HALF[precision]).float() if t.is_floating_point() else t.detach()


def _cast(t: torch.Tensor, precision: str) -> torch.Tensor:
    if precision in HALF and t.is_floating_point():
        return t.detach().to(HALF[precision])
    return t.detach()


# ---- storage: an exported model's tensors at its precision --------------------------------------------

def to_storage(state: dict[str, torch.Tensor], precision: str) -> dict[str, torch.Tensor]:
    """What model.safetensors holds: int8 Linear weights with their scales, or half-precision tensors."""
    if precision == "fp32":
        return state
    out = {}
    for name, t in state.items():
        if precision == "int8" and _linear_weight(name):
            out[name + ".int8"], out[name + ".scale"] = int8_weight(t)
        else:
            out[name] = _cast(t, precision) if precision in HALF else t
    return out


def from_storage(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Back to fp32 parameters (int8 weights times their scales: quantizing them again is exact)."""
    out = {}
    for name, t in stored.items():
        if name.endswith(".scale") and name[:-6] + ".int8" in stored:
            continue
        if name.endswith(".int8"):
            base = name[:-5]
            out[base] = t.float() * stored[base + ".scale"][:, None]
        else:
            out[name] = t.float() if t.is_floating_point() else t
    return out


def _linear_weight(name: str) -> bool:
    parts = name.split(".")
    return len(parts) >= 2 and parts[-1] == "weight" and parts[-2] in LINEARS
