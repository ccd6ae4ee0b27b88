"""Parameter containers shared by the SuperTransformer (largest shapes, every attention type's own
parameters) and the SubTransformer (exact shapes, its layer's type only). Same names in both, so an
extracted model's state_dict is exactly the supernet's active slices. No forward here: the math
lives in `functional.py`."""
from __future__ import annotations

import math

import torch
from torch import nn

Extras = dict[str, dict[str, tuple[int, ...]]]  # attention type -> parameter name -> shape


class BlockParams(nn.Module):
    def __init__(self, d: int, qw: int, kvw: int, ffn: int, extras: Extras, cross: tuple[int, int] | None,
                 adapters: Extras | None = None) -> None:
        """`adapters`: the supernet-only parameters of attention types that have one (`Kernel.adapt`),
        held as `<type>_adapter`; a SubTransformer has none."""
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.q, self.k, self.v = nn.Linear(d, qw), nn.Linear(d, kvw), nn.Linear(d, kvw)
        self.o = nn.Linear(qw, d)
        for kind, shapes in extras.items():
            if shapes:
                self.add_module(kind, nn.ParameterDict({n: nn.Parameter(torch.zeros(s)) for n, s in shapes.items()}))
        for kind, shapes in (adapters or {}).items():
            if shapes:
                self.add_module(f"{kind}_adapter", nn.ParameterDict({n: nn.Parameter(torch.zeros(s))
                                                                   for n, s in shapes.items()}))
        if cross is not None:  # (cross-attention width, encoder width)
            cw, de = cross
            self.lnx = nn.LayerNorm(d)
            self.xq, self.xk, self.xv, self.xo = nn.Linear(d, cw), nn.Linear(de, cw), nn.Linear(de, cw), nn.Linear(cw, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, ffn), nn.Linear(ffn, d)


class StackParams(nn.Module):
    def __init__(self, vocab: int, max_len: int, d: int, blocks: list[BlockParams], tok: bool = True,
                 learned_positions: bool = True, classes: int | None = None) -> None:
        """`tok=False`: the stack reads its token embedding from a table shared with another stack
        (encoder-decoder models: one vocabulary, one table); `learned_positions=False`: no position
        table (rotary positions, functional.rotate); `classes`: a classifier's head (an encoder's
        pooled output -> one logit per label) instead of logits through the token table."""
        super().__init__()
        if tok:
            self.tok = nn.Embedding(vocab, d)
        if learned_positions:
            self.pos = nn.Embedding(max_len, d)
        self.layers = nn.ModuleList(blocks)
        self.ln_f = nn.LayerNorm(d)
        if classes is not None:
            self.head = nn.Linear(d, classes)

    def own(self) -> dict[str, object]:
        """This stack's weights in the layout `functional.forward` reads (no slicing)."""
        w: dict[str, object] = {n: p for n, p in self.named_parameters() if not n.startswith("layers.")}
        w["layers"] = [dict(b.named_parameters()) for b in self.layers]
        return w


def init_stack(stack: StackParams, depth: int, generator: torch.Generator) -> None:
    """GPT-2's scheme: N(0, 0.02), residual projections scaled by 1/sqrt(2 * depth), zero biases,
    unit LayerNorms; each attention type initialises its own parameters."""
    from supernet.attention import get_kernel
    with torch.no_grad():
        if hasattr(stack, "tok"):
            stack.tok.weight.normal_(0.0, 0.02, generator=generator)
        if hasattr(stack, "pos"):
            stack.pos.weight.normal_(0.0, 0.01, generator=generator)
        for block in stack.layers:
            for name, m in block.named_children():
                if isinstance(m, nn.Linear):
                    std = 0.02 / math.sqrt(2 * depth) if name in ("o", "xo", "fc2") else 0.02
                    m.weight.normal_(0.0, std, generator=generator)
                    m.bias.zero_()
                elif isinstance(m, nn.ParameterDict) and name.endswith("_adapter"):
                    for p in m.values():  # the identity map
                        p.zero_()
                elif isinstance(m, nn.ParameterDict):
                    get_kernel(name).init_extra(dict(m.items()), generator=generator)
                elif isinstance(m, nn.LayerNorm):
                    m.reset_parameters()
        stack.ln_f.reset_parameters()
        if hasattr(stack, "head"):
            stack.head.weight.normal_(0.0, 0.02, generator=generator)
            stack.head.bias.zero_()


def shared_embedding(vocab: int, stacks: dict[str, int]) -> nn.Embedding | None:
    """Encoder-decoder models share one token table between the encoder's input, the decoder's
    input and the output layer (three-way tying, Press & Wolf 2017; HAT shares all embeddings too):
    a byte has one vector on both sides, so copying a source byte to the output (most of spelling
    modernisation, and of names in any translation) is learned early instead of after a mapping
    between two random tables. Each stack uses the first `embed` columns of it."""
    if set(stacks) != {"encoder", "decoder"}:
        return None
    return nn.Embedding(vocab, max(stacks.values()))


def init_shared(table: nn.Embedding, generator: torch.Generator) -> None:
    with torch.no_grad():
        table.weight.normal_(0.0, 0.02, generator=generator)
