"""How much memory a supernet training needs, from the standard estimates, before it starts.

- Parameters (fp32 master weights), gradients (fp32) and AdamW's two moments (fp32): 4 + 4 + 8
  bytes per parameter of the whole supernet (every attention type's own parameters included).
- Activations kept for the backward pass, for the largest arch (the sandwich runs one arch's graph
  at a time), after Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
  Transformer Models"): per layer of width h, sequence s, micro-batch b, per stored value:
  LayerNorm inputs and outputs, Q/K/V and the attention output, the FFN's input, hidden and
  activation, the residuals (~ s*b*(6h + 2q + 2kv + 2f)), plus the attention scores and
  probabilities of softmax attention (2*a*s*s*b; a window stores a*s*w*2), times 2 bytes under
  bf16/fp16 autocast and 4 in fp32; the logits and their softmax in fp32 (2*s*b*V*4).
- Activation checkpointing keeps only each block's input (s*b*h) and recomputes one block at a
  time in the backward pass.
"""
from __future__ import annotations

from dataclasses import dataclass

from space import Arch, SearchSpace
from space.attention import ATTENTION_TYPES


@dataclass(frozen=True)
class MemoryEstimate:
    params: int  # bytes
    grads: int
    optimizer: int
    activations: int
    parameters: int  # count

    @property
    def total(self) -> int:
        return self.params + self.grads + self.optimizer + self.activations

    def describe(self) -> str:
        g = 2 ** 30
        return (f"{self.total / g:.2f} GiB: parameters {self.params / g:.2f} ({self.parameters / 1e6:.1f}M), "
                f"gradients {self.grads / g:.2f}, AdamW state {self.optimizer / g:.2f}, activations "
                f"{self.activations / g:.2f}")


def activation_bytes(arch: Arch, seq: int, batch: int, precision: str, checkpointing: bool) -> int:
    per = 4 if precision == "fp32" else 2
    total, worst_block = 0, 0
    for _, stack in arch.stacks:
        h = stack.embed
        s = seq
        for layer in stack.layers:
            q, kv = layer.heads * arch.head_dim, layer.kv_heads * arch.head_dim
            values = s * batch * (6 * h + 2 * q + 2 * kv + 2 * layer.ffn)
            values += ATTENTION_TYPES[layer.attn].train_values(layer, s, batch)  # scores kept for backward
            if layer.cross_layers:
                values += s * batch * 4 * layer.cross_heads * arch.head_dim
            block = values * per
            worst_block = max(worst_block, block)
            total += s * batch * h * per if checkpointing else block
    logits = 2 * seq * batch * arch.vocab_size * 4
    return total + logits + (worst_block if checkpointing else 0)


def estimate(space: SearchSpace, parameters: int, seq: int, micro_batch: int, precision: str,
             checkpointing: bool = False) -> MemoryEstimate:
    """The training's peak, roughly, for `parameters` supernet parameters and micro-batches of
    `micro_batch` sequences of `seq` tokens (for translation, `seq` is the longest pair)."""
    acts = activation_bytes(space.largest(), seq, micro_batch, precision, checkpointing)
    return MemoryEstimate(params=4 * parameters, grads=4 * parameters, optimizer=8 * parameters, activations=acts,
                          parameters=parameters)


def supernet_parameters(space: SearchSpace) -> int:
    """Parameters of the SuperTransformer of `space`, counted without allocating it."""
    import torch
    from supernet.model import SuperTransformer
    with torch.device("meta"):
        model = SuperTransformer(space, init=False)
    return sum(p.numel() for p in model.parameters())
