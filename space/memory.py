"""How much memory an arch needs to run a workload (inference): a second budget beside latency.

- weights: the tensors an exported model stores at its precision (`supernet.precision.to_storage`:
  int8 Linear weights take a byte each plus a 4-byte scale per output row, everything else fp32;
  bf16/fp16 two bytes a value; fp32 four), exactly;
- state: what decoding keeps after the workload's prompt and generated tokens, for the batch: each
  layer's KV cache, bounded window cache or linear recurrent state (its attention type's unit says
  how many values, `AttentionType.state_values`), and an encoder-decoder's encoder memory and its
  cross-attention keys and values, at the activation precision (fp32 for int8 models), exactly as the cache
  tensors' bytes (tests/test_memory.py);
- activations: the largest working set beyond those of one pass (the prompt's prefill, or the
  whole sequence of an encoder): the block's inputs, queries, keys and values and their rotated
  copies under RoPE, the FFN's hidden values, what its attention kernel holds at once
  (`AttentionType.kernel_values`: nothing for causal softmax, which runs torch's fused kernel; a
  window's block scores and key/value slabs), and the logits; or, while decoding, one layer's cache
  copied as it grows. An estimate (allocators round and reuse), checked against the process's peak
  in docs/benchmarks.md ("Inference memory").

Jet-Nemotron (PostNAS) found the KV cache the main lever of decode throughput at long context: a
memory budget (`nas search --memory-budget 8MB`) is what lets grouped-query heads, windows and
linear state win where latency alone would not show them.
"""
from __future__ import annotations

from dataclasses import dataclass

from space.arch import Arch, Layer
from space.attention import ATTENTION_TYPES
from space.cost import Workload, activation_bytes, embedding_params, head_params, layer_params

SCALE_BYTES = 4  # an int8 row's fp32 scale


@dataclass(frozen=True)
class Memory:
    weights: int  # bytes
    state: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.state + self.activations

    def to_dict(self) -> dict[str, int]:
        return {"weights": self.weights, "state": self.state, "activations": self.activations, "total": self.total}


def _linear_shapes(layer: Layer, embed: int, head_dim: int, enc_embed: int | None) -> list[tuple[int, int]]:
    """(rows, columns) of the layer's Linear weights (supernet.precision.LINEARS)."""
    qw, kvw = layer.heads * head_dim, layer.kv_heads * head_dim
    shapes = [(qw, embed), (kvw, embed), (kvw, embed), (embed, qw), (layer.ffn, embed), (embed, layer.ffn)]
    if layer.cross_layers is not None:
        cw = layer.cross_heads * head_dim
        shapes += [(cw, embed), (cw, enc_embed), (cw, enc_embed), (embed, cw)]
    return shapes


def weight_bytes(arch: Arch) -> int:
    """Bytes of the weights as an exported model stores them."""
    enc = arch.encoder.embed if arch.encoder is not None else None
    total = 0
    for name, stack in arch.stacks:
        values = embedding_params(arch, name) + (head_params(arch) if name == "encoder" else 0)
        for layer in stack.layers:
            n = layer_params(layer, stack.embed, arch.head_dim, arch.max_len, enc if name == "decoder" else None)
            if arch.precision == "int8":
                shapes = _linear_shapes(layer, stack.embed, arch.head_dim, enc)
                linear = sum(r * c for r, c in shapes)
                total += linear + SCALE_BYTES * sum(r for r, _ in shapes) + 4 * (n - linear)
            else:
                values += n
        total += values * (2 if arch.precision in ("bf16", "fp16") else 4)
    return total


def state_bytes(arch: Arch, w: Workload) -> int:
    """Bytes of the decode state after the workload (0 for a workload that does not decode)."""
    if not w.gen_tokens:
        return 0
    per = activation_bytes(arch.precision)
    stack = arch.decoder
    context = w.seq_len + w.gen_tokens if arch.kind == "decoder" else w.gen_tokens
    values = sum(ATTENTION_TYPES[layer.attn].state_values(layer, arch.head_dim, context) for layer in stack.layers)
    if arch.kind == "encoder-decoder":  # the source's memory (the last k encoder layers, per k read) and
        # each layer's cross-attention keys and values of it, projected once
        reads = {layer.cross_layers for layer in stack.layers}
        values += sum(k * w.seq_len * arch.encoder.embed for k in reads)
        values += sum(2 * layer.cross_heads * arch.head_dim * w.seq_len * layer.cross_layers for layer in stack.layers)
    return w.batch * values * per


def activation_peak(arch: Arch, w: Workload) -> int:
    """The largest working set beyond the weights and the final state (bytes), roughly: the prompt's
    prefill (one block's inputs, queries, keys, values, their rotated copies under RoPE, the FFN's
    hidden values and its activation's output, the attention kernel's scores) and the logits (the
    last position's alone when generating, every position's in a forward pass); or, while decoding, a growing cache's copy (torch.cat holds a layer's old and
    new keys and values at once), whichever is larger."""
    per = activation_bytes(arch.precision)
    t, b = w.seq_len, w.batch
    rope = arch.positions == "rope"
    worst = 0
    for name, stack in arch.stacks:
        for layer in stack.layers:
            unit = ATTENTION_TYPES[layer.attn]
            qw, kvw = layer.heads * arch.head_dim, layer.kv_heads * arch.head_dim
            values = t * (2 * stack.embed + 2 * qw + 2 * kvw + 2 * layer.ffn)
            if rope and unit.rope:  # rotated queries and keys, and the half-turned temporaries beside them
                values += 2 * t * (qw + kvw)
            values += unit.kernel_values(layer, arch.head_dim, t, causal=name == "decoder")
            worst = max(worst, values)
    head = t if not w.gen_tokens else 1  # a generation reads the last position's logits only
    prefill = worst + head * arch.vocab_size
    copy = 0
    if w.gen_tokens:
        context = w.seq_len + w.gen_tokens if arch.kind == "decoder" else w.gen_tokens
        copy = max(ATTENTION_TYPES[layer.attn].state_values(layer, arch.head_dim, context)
                   for layer in arch.decoder.layers)
    return b * max(prefill, copy) * per


def inference_memory(arch: Arch, workload: Workload | None = None) -> Memory:
    w = workload or Workload()
    return Memory(weight_bytes(arch), state_bytes(arch, w), activation_peak(arch, w))


__all__ = ["Memory", "activation_peak", "inference_memory", "state_bytes", "weight_bytes"]
