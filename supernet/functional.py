"""The Transformer math, written once, as functions of (arch, weights, tokens).

Both the SuperTransformer (weights = views sliced from its largest tensors) and the standalone
SubTransformer (weights = its own parameters) call these functions, so an extracted model computes
exactly what the supernet computes for that arch.

Weights of a stack: {"tok.weight", "pos.weight" (learned positions only), "ln_f.weight", "ln_f.bias",
"layers": [block, ...]}
where a block is a flat dict named like the SubTransformer's parameters ("q.weight", "fc1.bias",
"linformer.E", ...). Blocks are pre-LN: x + Attn(LN(x)) [+ CrossAttn(LN(x), memory)] + FFN(LN(x)).

Positions: a learned table added to the token embeddings, or (an arch's `positions: rope`) rotary
embeddings: each self-attention kernel that takes them rotates its queries and keys by their absolute
positions (`rope_tables`, `rotate`), so a cache holds rotated keys and decoding continues exactly.
Cross-attention takes no positions (the encoder's own layers placed them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from space.arch import Arch, Layer
from supernet.attention import get_kernel
from supernet.attention.rope import Rope, rope_tables

Block = dict[str, torch.Tensor]


@dataclass
class Cache:
    """Incremental-decoding state, updated in place by `forward`: one kernel state per decoder
    layer (KV cache, bounded window cache, or recurrent state), the cross-attention K/V of the
    encoder memory, and how many tokens have been seen."""

    pos: int = 0
    layers: dict[int, dict[str, Any]] = field(default_factory=dict)
    memory: dict[int, torch.Tensor] | None = None  # cross_layers -> (B, k*S, de)
    memory_keep: dict[int, torch.Tensor | None] | None = None

    def state_bytes(self) -> int:
        """Bytes of the tensors the cache holds (the layers' states and the encoder memory):
        what space.memory.state_bytes predicts."""
        return tensor_bytes(list(self.layers.values())) + tensor_bytes(self.memory or {})


def tensor_bytes(x: Any) -> int:
    """Bytes of the tensors in x (a tensor, or dicts, lists and tuples of them)."""
    if isinstance(x, torch.Tensor):
        return x.numel() * x.element_size()
    if isinstance(x, dict):
        return sum(tensor_bytes(v) for v in x.values())
    if isinstance(x, (tuple, list)):
        return sum(tensor_bytes(v) for v in x)
    return 0


def _lin(x: torch.Tensor, w: Block, name: str) -> torch.Tensor:
    packed = w.get(f"{name}.packed")  # an int8 weight (supernet/precision.py): dynamic quantization
    if packed is not None:
        return torch.ops.quantized.linear_dynamic(x, packed, True)
    return F.linear(x, w[f"{name}.weight"], w[f"{name}.bias"])


def _ln(x: torch.Tensor, w: Block, name: str) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), w[f"{name}.weight"], w[f"{name}.bias"])


def _heads(x: torch.Tensor, n: int, hd: int) -> torch.Tensor:
    b, t, _ = x.shape
    return x.view(b, t, n, hd).transpose(1, 2)  # (B, n, T, hd)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, n, t, hd = x.shape
    return x.transpose(1, 2).reshape(b, t, n * hd)


def block_forward(x: torch.Tensor, w: Block, layer: Layer, head_dim: int, causal: bool, *,
                  keep: torch.Tensor | None = None, memory: torch.Tensor | None = None,
                  memory_keep: torch.Tensor | None = None, state: dict[str, Any] | None = None,
                  rope: Rope | None = None) -> torch.Tensor:
    """One block over x (B, T, d). With `state` (a dict, possibly empty) the self-attention runs
    incrementally and the state is updated in place; `rope`: rotary positions of these tokens."""
    kernel = get_kernel(layer.attn)
    extra = {n.split(".", 1)[1]: t for n, t in w.items() if n.startswith(f"{layer.attn}.")}
    a = _ln(x, w, "ln1")
    q = _heads(_lin(a, w, "q"), layer.heads, head_dim)  # (B, h, T, hd)
    k = _heads(_lin(a, w, "k"), layer.kv_heads, head_dim)  # (B, kv, T, hd)
    v = _heads(_lin(a, w, "v"), layer.kv_heads, head_dim)
    at = {} if rope is None else {"rope": rope}  # a kernel of a type without rotary positions never sees one
    if state is not None:
        out, state["self"] = kernel.step(q, k, v, extra, layer, state.get("self"), **at)
    else:
        out = kernel.attend(q, k, v, extra, layer, causal, keep, **at)
    x = x + _lin(_merge(out), w, "o")
    if layer.cross_layers is not None:
        c = _ln(x, w, "lnx")
        cq = _heads(_lin(c, w, "xq"), layer.cross_heads, head_dim)
        if state is not None and "cross" in state:
            ck, cv = state["cross"]  # the memory's keys and values, projected once per sequence
        else:
            ck = _heads(_lin(memory, w, "xk"), layer.cross_heads, head_dim)
            cv = _heads(_lin(memory, w, "xv"), layer.cross_heads, head_dim)
            if state is not None:
                state["cross"] = (ck, cv)
        mask = None if memory_keep is None else memory_keep[:, None, None, :]
        x = x + _lin(_merge(F.scaled_dot_product_attention(cq, ck, cv, attn_mask=mask)), w, "xo")
    f = _ln(x, w, "ln2")
    return x + _lin(F.gelu(_lin(f, w, "fc1")), w, "fc2")


def embed(tokens: torch.Tensor, w: dict[str, Any], start: int = 0) -> torch.Tensor:
    x = F.embedding(tokens, w["tok.weight"])
    if "pos.weight" not in w:  # rotary positions: the attention places the tokens
        return x
    return x + w["pos.weight"][start:start + tokens.shape[1]]


def _rope(arch: Arch, start: int, t: int, like: torch.Tensor) -> Rope | None:
    return rope_tables(start, t, arch.head_dim, like.device) if arch.positions == "rope" else None


def encode(arch: Arch, weights: dict[str, Any], src: torch.Tensor, keep: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Encoder outputs after each layer, each through the final LayerNorm (what cross-attention reads)."""
    w = weights["encoder"]
    x = embed(src, w)
    rope = _rope(arch, 0, src.shape[1], x)
    outs = []
    for layer, block in zip(arch.encoder.layers, w["layers"]):
        x = block_forward(x, block, layer, arch.head_dim, causal=False, keep=keep, rope=rope)
        outs.append(x)
    return [F.layer_norm(o, (o.shape[-1],), w["ln_f.weight"], w["ln_f.bias"]) for o in outs]


def memories(arch: Arch, enc_outs: list[torch.Tensor], keep: torch.Tensor | None
             ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor | None]]:
    """HAT's arbitrary encoder-decoder attention: a layer reading the last k encoder layers sees
    their outputs concatenated along the sequence (no new parameters)."""
    ks = {layer.cross_layers for layer in arch.decoder.layers}
    mem = {k: torch.cat(enc_outs[-k:], dim=1) for k in ks}
    mkeep = {k: None if keep is None else keep.repeat(1, k) for k in ks}
    return mem, mkeep


def batch_inputs(x: torch.Tensor | dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(tokens, keyword arguments of `forward`) of a batch's input: a token tensor (language model)
    or the dict a translation batch carries (decoder input, source, source padding mask) or a
    classification batch (tokens, their padding mask)."""
    if isinstance(x, dict) and "keep" in x:
        return x["tokens"], {"keep": x["keep"]}
    if isinstance(x, dict):
        return x["tokens"], {"src": x["src"], "src_keep": x["src_keep"]}
    return x, {}


def forward(arch: Arch, weights: dict[str, Any], tokens: torch.Tensor, *, src: torch.Tensor | None = None,
            src_keep: torch.Tensor | None = None, keep: torch.Tensor | None = None, cache: Cache | None = None,
            last_only: bool = False, checkpoint: bool = False) -> torch.Tensor:
    """Logits (B, T, vocab) of any kind of model. decoder: causal LM over `tokens`. encoder: a
    classifier, non-causal over `tokens` (`keep` marks real tokens), its logits (B, classes) from the
    mean of the final outputs over the real tokens. encoder-decoder: `src` is encoded (once per
    cache) and `tokens` is the decoder input. With a `cache`, decoding continues from `cache.pos`.
    `checkpoint`: activation checkpointing of every block (training only: recompute in backward)."""
    if arch.kind == "encoder":
        w, stack, causal = weights["encoder"], arch.encoder, False
    else:
        w, stack, causal = weights["decoder"], arch.decoder, True
    mem = mkeep = None
    if arch.kind == "encoder-decoder":
        if cache is not None and cache.memory is not None:
            mem, mkeep = cache.memory, cache.memory_keep
        else:
            mem, mkeep = memories(arch, encode(arch, weights, src, src_keep), src_keep)
            if cache is not None:
                cache.memory, cache.memory_keep = mem, mkeep
    start = 0 if cache is None else cache.pos
    x = embed(tokens, w, start)
    rope = _rope(arch, start, tokens.shape[1], x)
    recompute = checkpoint and cache is None and torch.is_grad_enabled()
    for i, (layer, block) in enumerate(zip(stack.layers, w["layers"])):
        k = layer.cross_layers
        kw = dict(keep=keep, memory=mem[k] if k else None, memory_keep=mkeep[k] if k else None,
                  state=None if cache is None else cache.layers.setdefault(i, {}), rope=rope)
        if recompute:
            from torch.utils.checkpoint import checkpoint as recomputed
            x = recomputed(block_forward, x, block, layer, arch.head_dim, causal, use_reentrant=False, **kw)
        else:
            x = block_forward(x, block, layer, arch.head_dim, causal, **kw)
    if cache is not None:
        cache.pos += tokens.shape[1]
    if last_only:
        x = x[:, -1:]
    x = F.layer_norm(x, (x.shape[-1],), w["ln_f.weight"], w["ln_f.bias"])
    if arch.kind == "encoder":
        return F.linear(pool(x, keep), w["head.weight"], w["head.bias"])  # (B, classes)
    return F.linear(x, w["tok.weight"])  # the head is tied to the token embedding


def pool(x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """The mean over a sequence's real tokens (`keep`: True where real; None: all are): (B, d)."""
    if keep is None:
        return x.mean(1)
    k = keep.unsqueeze(-1).to(x.dtype)
    return (x * k).sum(1) / k.sum(1).clamp(min=1)
