"""The GPU kernels an arch launches under a workload, per invocation (the prefill, each decode
step), torch-free: what a kernel-level latency model (latency/gpu.py) looks up in measured tables.

A record is per batch of `batch` sequences:
- ("gemm", m, n, k): x (m, k) @ W (k, n); a batched product of small matrices is one GEMM of their
  rows stacked (same FLOPs; its operands are small, so bytes barely differ);
- ("attn", queries, keys, heads, kv_heads, causal, groups): one fused attention kernel
  (scaled_dot_product_attention) of `groups` x batch sequences;
- ("ew", values): an element-wise, copy or reduction kernel reading and writing `values` values;
- ("roof", flops, values): a kernel known only by its cost (an attention type that does not list
  its kernels: `AttentionType.kernels`).

The list follows supernet/functional.py: the kernels its ops launch (a view launches none), the
same model `nas export` writes and `nas measure` times, with each attention type's own in
space/attention/<type>.py (`kernels`, `rope_kernels`). tests/test_gpu_model.py checks the count
and the GEMM shapes against the real model's dispatches.
"""
from __future__ import annotations

import functools

from space.arch import Arch, Layer
from space.attention import ATTENTION_TYPES
from space.cost import Workload, _stack_pass, activation_bytes, check_workload

Kernel = tuple
ROPE_TABLE_KERNELS = 8  # the cos and sin tables of a stack's pass: two aranges, a quotient, a power, a product, a cat, cos, sin


@functools.lru_cache(maxsize=1 << 12)
def layer_kernels(layer: Layer, embed: int, head_dim: int, rope: bool, enc_embed: int | None, start: int, q: int,
                  causal: bool, memory: int, project_memory: bool, mode: str, batch: int) -> tuple[Kernel, ...]:
    """One block over q new tokens after `start` cached, for `batch` sequences."""
    unit = ATTENTION_TYPES[layer.attn]
    qw, kvw, e = layer.heads * head_dim, layer.kv_heads * head_dim, embed
    out: list[Kernel] = [("ew", 2 * q * e), ("gemm", q, qw, e), ("gemm", q, kvw, e), ("gemm", q, kvw, e)]
    if rope and unit.rope:
        out += unit.rope_kernels(layer, head_dim, q, mode, causal)
    out += unit.kernels(layer, head_dim, start, q, mode, causal)
    if q > 1 and not unit.token_major:
        out.append(("ew", 2 * q * qw))  # the heads merged back: a copy (one token's, or a fused kernel's, is a view)
    out += [("gemm", q, e, qw), ("ew", 3 * q * e)]
    if layer.cross_layers is not None:
        w, m = layer.cross_heads * head_dim, memory * layer.cross_layers
        out += [("ew", 2 * q * e), ("gemm", q, w, e)]
        if project_memory:
            out += [("gemm", m, w, enc_embed)] * 2
        out += [("attn", q, m, layer.cross_heads, layer.cross_heads, 0, 1)]  # fused: its heads merge as a view
        out += [("gemm", q, e, w), ("ew", 3 * q * e)]
    out += [("ew", 2 * q * e), ("gemm", q, layer.ffn, e), ("ew", 2 * q * layer.ffn), ("gemm", q, e, layer.ffn),
            ("ew", 3 * q * e)]
    return tuple(_times(k, batch) for k in out)


def _times(k: Kernel, batch: int) -> Kernel:
    """A per-sequence record for `batch` sequences."""
    kind = k[0]
    if kind == "gemm":
        return ("gemm", k[1] * batch, k[2], k[3])
    if kind == "attn":
        return ("attn", *k[1:6], k[6] * batch)
    if kind == "ew":
        return ("ew", k[1] * batch)
    return ("roof", k[1] * batch, k[2] * batch)


def _stack_kernels(arch: Arch, name: str, start: int, q: int, batch: int, head_q: int, memory: int = 0,
                   project_memory: bool = False, mode: str = "forward") -> list[Kernel]:
    stack = getattr(arch, name)
    causal = name == "decoder"
    enc_embed = arch.encoder.embed if arch.encoder else None
    rope = arch.positions == "rope"
    e = stack.embed
    out: list[Kernel] = [("ew", 2 * q * e * batch)]  # the token rows
    if rope:
        out += [("ew", q * arch.head_dim)] * ROPE_TABLE_KERNELS
    else:
        out.append(("ew", 3 * q * e * batch))  # + the position rows
    if mode == "decode":
        out.append(("ew", head_q * arch.vocab_size * batch))  # the input token picked from the last logits
    for layer in stack.layers:
        out += layer_kernels(layer, e, arch.head_dim, rope, enc_embed, start, q, causal, memory, project_memory,
                             mode, batch)
    if head_q == 0:  # an encoder under a decoder: each layer's output normed, memories concatenated
        out += [("ew", 2 * q * e * batch)] * stack.depth
        out += [("ew", 2 * q * e * batch * k) for k in sorted({la.cross_layers for la in arch.decoder.layers})]
        return out
    if arch.classes is not None:  # final norm, the mean over the tokens, the classifier's head
        return out + [("ew", 2 * q * e * batch), ("ew", q * e * batch), ("gemm", batch, arch.classes, e)]
    rows = head_q if mode != "forward" else q
    out += [("ew", 2 * rows * e * batch), ("gemm", rows * batch, arch.vocab_size, e)]  # final norm, tied head
    return out


@functools.lru_cache(maxsize=256)  # latency.gpu.GpuLatency keeps the per-arch sums; this only spares recounting
def kernel_invocations(arch: Arch, workload: Workload) -> tuple[tuple[tuple[Kernel, ...], int], ...]:
    """Per invocation of `workload` (a forward pass; or the prompt's prefill then each decode step):
    (its kernels, the tensor ops it dispatches). The ops are the cost model's (space.cost), what an
    eager runtime pays a host-side overhead for."""
    w, b = workload, workload.batch
    n = w.seq_len
    check_workload(arch, w)
    db = activation_bytes(arch.precision)

    def ops(name: str, start: int, q: int, head_q: int, **kw) -> int:
        return sum(p[3] for p in _stack_pass(arch, name, start, q, b, head_q, db, **kw))

    out: list[tuple[tuple[Kernel, ...], int]] = []
    if arch.kind == "encoder":
        out.append((tuple(_stack_kernels(arch, "encoder", 0, n, b, n)), ops("encoder", 0, n, n)))
    elif arch.kind == "decoder":
        if not w.generation:
            out.append((tuple(_stack_kernels(arch, "decoder", 0, n, b, n)), ops("decoder", 0, n, n)))
        else:
            mode = "prefill" if n > 1 else "first"
            out.append((tuple(_stack_kernels(arch, "decoder", 0, n, b, 1, mode=mode)),
                        ops("decoder", 0, n, 1, mode=mode)))
            for t in range(w.gen_tokens):
                out.append((tuple(_stack_kernels(arch, "decoder", n + t, 1, b, 1, mode="decode")),
                            ops("decoder", n + t, 1, 1, mode="decode")))
    else:
        enc = (tuple(_stack_kernels(arch, "encoder", 0, n, b, 0)), ops("encoder", 0, n, 0))
        if not w.generation:
            dec = _stack_kernels(arch, "decoder", 0, n, b, n, memory=n, project_memory=True)
            out.append((enc[0] + tuple(dec), enc[1] + ops("decoder", 0, n, n, memory=n, project_memory=True)))
        else:  # the first step encodes the source and projects its K/V; then one token per step
            first = _stack_kernels(arch, "decoder", 0, 1, b, 1, memory=n, project_memory=True, mode="first")
            out.append((enc[0] + tuple(first),
                        enc[1] + ops("decoder", 0, 1, 1, memory=n, project_memory=True, mode="first")))
            for t in range(1, w.gen_tokens):
                out.append((tuple(_stack_kernels(arch, "decoder", t, 1, b, 1, memory=n, mode="decode")),
                            ops("decoder", t, 1, 1, memory=n, mode="decode")))
    return tuple(out)


def kernel_count(arch: Arch, workload: Workload) -> int:
    return sum(len(k) for k, _ in kernel_invocations(arch, workload))


__all__ = ["Kernel", "kernel_count", "kernel_invocations", "layer_kernels"]
