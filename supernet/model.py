"""The SuperTransformer: one set of largest weights that every arch of a space runs on.

What is shared (by front portion, as HAT and Once-for-All): an arch of embed d, h heads, kv K/V
heads, FFN f uses W[:out, :in] of every projection (Q rows [:h*hd], K/V rows [:kv*hd], FFN rows
[:f]), the first d features of embeddings and LayerNorms, and the first `depth` blocks. An
encoder-decoder's two stacks share one token table (`modules.shared_embedding`). All
attention types of a layer share its Q/K/V/output projections, FFN and norms. Not shared: each
type's own parameters (Linformer's E/F, Fastformer's pooling vectors) sit beside them, per layer,
and are sliced the same way (E[:proj_len], pooling vectors [:heads]).

`active_weights(arch)` is the one slicing function: the forward pass runs on its views, and
`extract` copies them into a standalone SubTransformer.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from space import Arch, SearchSpace, Stack, StackSpace
from supernet import functional
from supernet.attention import get_kernel
from supernet.modules import BlockParams, StackParams, init_shared, init_stack, shared_embedding


def _linear(lin: nn.Linear, out: int, inp: int, name: str) -> dict[str, torch.Tensor]:
    return {f"{name}.weight": lin.weight[:out, :inp], f"{name}.bias": lin.bias[:out]}


def _norm(ln: nn.LayerNorm, d: int, name: str) -> dict[str, torch.Tensor]:
    return {f"{name}.weight": ln.weight[:d], f"{name}.bias": ln.bias[:d]}


def _max_ffn(ss: StackSpace) -> int:
    return max(max(ss.ffn_choices(e)) for e in ss.embed)


class SuperTransformer(nn.Module):
    def __init__(self, space: SearchSpace, seed: int = 0, init: bool = True, adapters: bool = False) -> None:
        """`adapters`: give the attention types that have one their supernet-only adapter
        (`Kernel.adapt`, the training setting `type_adapters`)."""
        super().__init__()
        self.space = space
        self.adapters = adapters
        hd = space.head_dim
        enc_d = max(space.encoder.embed) if space.encoder else None
        shared = shared_embedding(space.vocab_size, {name: max(ss.embed) for name, ss in space.stacks})
        if shared is not None:
            self.embed = shared
        for name, ss in space.stacks:
            d = max(ss.embed)
            kv = max(ss.kv_heads) if ss.kv_heads else max(ss.heads)
            extras = {t: get_kernel(t).extra_shapes(max(ss.heads), hd, space.max_len, max(p) if p else None)
                      for t, p in ss.attention}
            cross = (max(ss.cross_heads) * hd, enc_d) if ss.cross_layers else None
            kvh = min(kv, max(ss.heads))
            adapt = ({t: get_kernel(t).adapter_shapes(max(ss.heads), kvh, hd) for t, _ in ss.attention}
                     if adapters else None)
            blocks = [BlockParams(d, max(ss.heads) * hd, kvh * hd, _max_ffn(ss), extras, cross, adapt)
                      for _ in range(max(ss.depth))]
            self.add_module(name, StackParams(space.vocab_size, space.max_len, d, blocks, tok=shared is None,
                                              learned_positions=space.positions == "learned", classes=space.classes))
        if init:  # init=False: shapes only (e.g. on the meta device, to count parameters)
            self.reset_parameters(seed)
        self._checked: set[str] = set()

    def reset_parameters(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        for name, ss in self.space.stacks:
            init_stack(getattr(self, name), max(ss.depth), g)
        if hasattr(self, "embed"):
            init_shared(self.embed, g)

    # ---- the slicing function -------------------------------------------------------------------
    def _active_stack(self, name: str, stack: Stack, enc_embed: int | None) -> dict[str, Any]:
        params: StackParams = getattr(self, name)
        d, hd = stack.embed, self.space.head_dim
        tok = self.embed if hasattr(self, "embed") else params.tok
        w: dict[str, Any] = {"tok.weight": tok.weight[:, :d], **_norm(params.ln_f, d, "ln_f")}
        if hasattr(params, "pos"):  # learned positions
            w["pos.weight"] = params.pos.weight[:, :d]
        if hasattr(params, "head"):  # a classifier: every label's row, its first d features
            w["head.weight"], w["head.bias"] = params.head.weight[:, :d], params.head.bias
        blocks = []
        for layer, bp in zip(stack.layers, params.layers):
            qw, kvw = layer.heads * hd, layer.kv_heads * hd
            b = {**_norm(bp.ln1, d, "ln1"), **_linear(bp.q, qw, d, "q"), **_linear(bp.k, kvw, d, "k"),
                 **_linear(bp.v, kvw, d, "v"), **_linear(bp.o, d, qw, "o"), **_norm(bp.ln2, d, "ln2"),
                 **_linear(bp.fc1, layer.ffn, d, "fc1"), **_linear(bp.fc2, d, layer.ffn, "fc2")}
            if hasattr(bp, layer.attn):
                own = get_kernel(layer.attn).slice_extra(dict(getattr(bp, layer.attn).items()), layer)
                b.update({f"{layer.attn}.{n}": t for n, t in own.items()})
            if hasattr(bp, f"{layer.attn}_adapter"):
                b = get_kernel(layer.attn).adapt(b, dict(getattr(bp, f"{layer.attn}_adapter").items()), layer, hd)
            if layer.cross_layers is not None:
                cw = layer.cross_heads * hd
                b.update({**_norm(bp.lnx, d, "lnx"), **_linear(bp.xq, cw, d, "xq"), **_linear(bp.xk, cw, enc_embed, "xk"),
                          **_linear(bp.xv, cw, enc_embed, "xv"), **_linear(bp.xo, d, cw, "xo")})
            blocks.append(b)
        w["layers"] = blocks
        return w

    def active_weights(self, arch: Arch) -> dict[str, Any]:
        """Views of the weights `arch` uses, in the layout `functional.forward` reads."""
        self.require(arch)
        enc_embed = arch.encoder.embed if arch.encoder else None
        return {name: self._active_stack(name, stack, enc_embed) for name, stack in arch.stacks}

    def require(self, arch: Arch) -> None:
        if arch.id not in self._checked:  # membership once per arch, not once per batch
            self.space.require(arch)
            self._checked.add(arch.id)

    # ---- running an arch ------------------------------------------------------------------------
    def forward(self, tokens: torch.Tensor, arch: Arch, **kw: Any) -> torch.Tensor:
        """Logits of `arch` with inherited weights; keyword arguments as `functional.forward`."""
        return functional.forward(arch, self.active_weights(arch), tokens, **kw)
