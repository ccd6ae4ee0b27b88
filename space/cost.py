"""Analytic cost of an arch under a workload: parameters, FLOPs and bytes moved, per layer and total.

The model counted is the one `supernet/` builds (pre-LN blocks, biased projections, learned
positions, LM head tied to the token embedding). FLOPs count a multiply-add as 2. Bytes count, per
invocation (a forward pass, a prefill, each decode step): every weight read once, every matmul's
activations read and written once, and the key/value cache or recurrent state read once. They are
the inputs of a roofline model, not a simulation of caches.
"""
from __future__ import annotations

import functools

from dataclasses import asdict, dataclass, field
from typing import Any

from space.files import check_keys
from space.arch import Arch, ArchError, Layer
from space.attention import ATTENTION_TYPES
from space.attention.base import ROPE_TABLE_OPS
from space.options import check_int


@dataclass(frozen=True)
class Workload:
    """What is timed. gen_tokens == 0: one forward pass over `seq_len` tokens. gen_tokens > 0:
    generation = a prefill of `seq_len` tokens (the source, for encoder-decoder) plus `gen_tokens`
    incremental decode steps with the cache (HAT times the encoder + 30 decoder steps)."""

    batch: int = 1
    seq_len: int = 64
    gen_tokens: int = 0

    def __post_init__(self) -> None:
        for name in ("batch", "seq_len"):
            check_int(getattr(self, name), f"workload.{name}", 1, ArchError)
        check_int(self.gen_tokens, "workload.gen_tokens", 0, ArchError)

    @property
    def generation(self) -> bool:
        return self.gen_tokens > 0

    def __str__(self) -> str:
        return f"batch={self.batch},len={self.seq_len},gen={self.gen_tokens}"

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str = "workload") -> "Workload":
        check_keys(d, where, ("batch", "seq_len", "gen_tokens"), error=ArchError,
                   what="a mapping with batch, seq_len, gen_tokens")
        return cls(**d)

    @classmethod
    def parse(cls, text: str, base: "Workload | None" = None) -> "Workload":
        """`batch=1,len=64,gen=32` (any subset; the rest from `base`)."""
        aliases = {"batch": "batch", "b": "batch", "len": "seq_len", "seq_len": "seq_len", "n": "seq_len",
                   "gen": "gen_tokens", "gen_tokens": "gen_tokens", "g": "gen_tokens"}
        values = (base or cls()).to_dict()
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep or key.strip() not in aliases or not value.strip().isdigit():
                raise ArchError(f"workload {text!r}: cannot read {part!r}; write e.g. batch=1,len=64,gen=32")
            values[aliases[key.strip()]] = int(value)
        return cls(**values)


@dataclass(frozen=True)
class PartCost:
    part: str  # "decoder.layers[3]", "decoder.embedding", "decoder.head", ...
    params: int
    flops: int
    bytes: int
    ops: int  # tensor operations dispatched (each pays a fixed overhead: a kernel launch, a dispatch)


@dataclass(frozen=True)
class Cost:
    workload: Workload
    parts: tuple[PartCost, ...]
    # (part, flops, bytes, ops) of every invocation (the prefill, each decode step): a roofline
    # takes max(compute, memory) per invocation, which per-part totals would blur
    invocations: tuple[tuple[str, int, int, int], ...] = ()
    params: int = field(init=False)
    flops: int = field(init=False)
    bytes: int = field(init=False)
    ops: int = field(init=False)

    def __post_init__(self) -> None:
        for name in ("params", "flops", "bytes", "ops"):
            object.__setattr__(self, name, sum(getattr(p, name) for p in self.parts))

    def to_dict(self) -> dict[str, Any]:
        return {"workload": self.workload.to_dict(), "params": self.params, "flops": self.flops,
                "bytes": self.bytes, "ops": self.ops, "parts": [asdict(p) for p in self.parts]}


# ---- per-layer counts ---------------------------------------------------------------------------

def attention_params(layer: Layer, embed: int, head_dim: int, max_len: int) -> int:
    """The shared Q/K/V/output projections, and the attention type's own parameters."""
    qw, kvw = layer.heads * head_dim, layer.kv_heads * head_dim
    n = (embed * qw + qw) + 2 * (embed * kvw + kvw) + (qw * embed + embed)
    return n + ATTENTION_TYPES[layer.attn].own_params(layer, head_dim, max_len)


def cross_params(layer: Layer, embed: int, enc_embed: int, head_dim: int) -> int:
    w = layer.cross_heads * head_dim
    return (embed * w + w) + 2 * (enc_embed * w + w) + (w * embed + embed) + 2 * embed


def layer_params(layer: Layer, embed: int, head_dim: int, max_len: int, enc_embed: int | None = None) -> int:
    n = attention_params(layer, embed, head_dim, max_len) + 2 * (embed * layer.ffn) + layer.ffn + embed
    n += 2 * 2 * embed  # the two LayerNorms
    if layer.cross_layers is not None:
        n += cross_params(layer, embed, enc_embed, head_dim)
    return n


def _self_attention(layer: Layer, embed: int, head_dim: int, start: int, q: int, causal: bool,
                    db: int, rope: bool = False) -> tuple[int, int]:
    """FLOPs and activation/cache bytes of self-attention for q new tokens after `start` cached."""
    qw, kvw = layer.heads * head_dim, layer.kv_heads * head_dim
    flops = 2 * q * embed * qw + 2 * 2 * q * embed * kvw + 2 * q * qw * embed  # Q, K, V, O projections
    act = q * (embed + qw + 2 * kvw + qw + embed)
    if rope:  # queries and keys rotated: x cos + turn(x) sin, read and written twice
        flops, act = flops + 4 * q * (qw + kvw), act + 4 * q * (qw + kvw)
    unit = ATTENTION_TYPES.get(layer.attn)
    if unit is None:
        raise ArchError(f"no cost model for attention type {layer.attn!r}")
    f, a = unit.mixing(layer, head_dim, start, q, causal)
    flops, act = flops + f, act + a
    return flops, act * db


def _ffn(layer: Layer, embed: int, q: int, db: int) -> tuple[int, int]:
    return 4 * q * embed * layer.ffn, q * (2 * embed + 2 * layer.ffn) * db


def _cross(layer: Layer, embed: int, head_dim: int, q: int, memory: int, project_memory: bool,
           enc_embed: int, db: int) -> tuple[int, int]:
    w = layer.cross_heads * head_dim
    m = memory * layer.cross_layers  # the last k encoder layers, concatenated along the sequence
    flops = 2 * q * embed * w * 2 + 4 * q * m * w + 5 * q * m * layer.cross_heads
    act = q * (2 * embed + 2 * w) + 2 * m * w + 2 * q * m * layer.cross_heads
    if project_memory:  # keys and values of the encoder memory: once per sequence, then cached
        flops += 2 * 2 * m * enc_embed * w
        act += m * (enc_embed + 2 * w)
    return flops, act * db


# Tensor operations each part dispatches (what pays a fixed per-op cost: a kernel launch, a framework
# dispatch), counted from the aten ops supernet/functional.py and the kernels run, per invocation
# mode: "forward" (a whole sequence, no cache), "prefill" (a prompt into an empty cache), "first"
# (one token into an empty cache: an encoder-decoder's first step), "decode" (one token after
# others). tests/test_cost.py checks them against a count of the real dispatches.
_BLOCK_OPS = 19  # LayerNorms, Q/K/V/output projections, head reshapes, FFN, GELU, residual adds
_CROSS_OPS, _CROSS_MEMORY_OPS = 9, 6  # cross-attention per step; projecting the memory's K/V once
# (each attention type counts its own: space/attention/<type>.py `ops`)


def _attention_ops(layer: Layer, q: int, mode: str, causal: bool) -> int:
    return ATTENTION_TYPES[layer.attn].ops(layer, q, mode, causal)


@functools.lru_cache(maxsize=None)
def _part_name(stack: str, i: int) -> str:
    return f"{stack}.layers[{i}]"


@functools.lru_cache(maxsize=1 << 17)
def _layer_pass(layer: Layer, embed: int, head_dim: int, max_len: int, precision: str, rope: bool,
                enc_embed: int | None, start: int, q: int, causal: bool, db: int, memory: int, project_memory: bool,
                mode: str) -> tuple[int, int, int, int]:
    """(flops, activation bytes, weight bytes, ops) of one layer over q new tokens after `start`
    cached, for one sequence. Memoised: a search's archs share layers, and a decode step's cost
    repeats across archs that hold the same layer."""
    f1, b1 = _self_attention(layer, embed, head_dim, start, q, causal, db, rope)
    f2, b2 = _ffn(layer, embed, q, db)
    flops, act = f1 + f2 + 2 * 8 * q * embed, b1 + b2  # + LayerNorms and residuals
    if layer.cross_layers is not None:
        f3, b3 = _cross(layer, embed, head_dim, q, memory, project_memory, enc_embed, db)
        flops, act = flops + f3, act + b3
    # weights at the arch's precision: int8 Linear weights take a byte each (plus a scale per row)
    weights = layer_params(layer, embed, head_dim, max_len, enc_embed) * weight_bytes(precision)
    ops = _BLOCK_OPS + _attention_ops(layer, q, mode, causal)
    if rope:
        ops += ATTENTION_TYPES[layer.attn].rope_ops(layer, q, mode, causal)
    if layer.cross_layers is not None:
        ops += _CROSS_OPS + (_CROSS_MEMORY_OPS if project_memory else 0)
    return flops, act, weights, ops


def _stack_pass(arch: Arch, name: str, start: int, q: int, batch: int, head_q: int, db: int,
                memory: int = 0, project_memory: bool = False, mode: str = "forward") -> list[tuple[str, int, int, int]]:
    """(part, flops, bytes, ops) of one invocation of a stack over q new tokens."""
    stack = getattr(arch, name)
    causal = name == "decoder"
    enc_embed = arch.encoder.embed if arch.encoder else None
    rope = arch.positions == "rope"
    out = []
    for i, layer in enumerate(stack.layers):
        flops, act, weights, ops = _layer_pass(layer, stack.embed, arch.head_dim, arch.max_len, arch.precision, rope,
                                               enc_embed, start, q, causal, db, memory, project_memory, mode)
        out.append((_part_name(name, i), batch * flops, batch * act + weights, ops))
    emb_bytes = batch * q * stack.embed * db * 2 + q * stack.embed * db  # token rows + position rows (or RoPE's tables)
    if head_q == 0:  # an encoder under a decoder: each layer's output normed, memories concatenated
        emb_ops = 3 + stack.depth + len({layer.cross_layers for layer in arch.decoder.layers})
    elif mode == "forward":
        emb_ops = 3 + 1  # token and position rows, the sum; the final norm
    else:  # a cached invocation: + the last position's slice; a decode step also picks its input (argmax)
        emb_ops = 3 + 1 + 1 + (1 if mode == "decode" else 0)
    if arch.positions == "rope":
        emb_ops += ROPE_TABLE_OPS - 2  # the cos and sin tables instead of the learned rows' slice and sum
    if arch.kind == "encoder-decoder" and name == "decoder":
        emb_ops += 2  # each call slices both stacks' columns of the shared token table
    out.append((f"{name}.embedding", 0, emb_bytes, emb_ops))
    if head_q and arch.classes is not None:  # a classifier: the mean over the tokens, then a row per label
        out.append((f"{name}.head", batch * (q * stack.embed + 2 * stack.embed * arch.classes),
                    arch.classes * (stack.embed + 1) * db + batch * (q * stack.embed + stack.embed + arch.classes) * db,
                    2))
    elif head_q:  # logits through the tied embedding, for head_q positions
        out.append((f"{name}.head", batch * 2 * head_q * stack.embed * arch.vocab_size,
                    arch.vocab_size * stack.embed * db + batch * head_q * (stack.embed + arch.vocab_size) * db, 1))
    return out


def _decode_passes(arch: Arch, start: int, count: int, batch: int, db: int,
                   memory: int = 0) -> list[tuple[str, int, int, int]]:
    """`_stack_pass` of the decoder for `count` decode steps of one token from `start` cached: the
    same invocations in step order, each layer's steps looked up at once."""
    if count <= 0:
        return []
    stack, enc_embed, rope = arch.decoder, arch.encoder.embed if arch.encoder else None, arch.positions == "rope"
    per_layer = [_layer_steps(layer, stack.embed, arch.head_dim, arch.max_len, arch.precision, rope, enc_embed,
                              start, count, db, memory) for layer in stack.layers]
    fixed = _stack_pass(arch, "decoder", start, 1, batch, 1, db, memory=memory, mode="decode")[stack.depth:]
    names = [_part_name("decoder", i) for i in range(stack.depth)]
    out = []
    for t in range(count):
        for name, steps in zip(names, per_layer):
            flops, act, weights, ops = steps[t]
            out.append((name, batch * flops, batch * act + weights, ops))
        out += fixed  # the embedding and the head do not depend on the step
    return out


@functools.lru_cache(maxsize=1 << 14)
def _layer_steps(layer: Layer, embed: int, head_dim: int, max_len: int, precision: str, rope: bool,
                 enc_embed: int | None, start: int, count: int, db: int, memory: int) -> tuple:
    return tuple(_layer_pass(layer, embed, head_dim, max_len, precision, rope, enc_embed, start + t, 1, True, db,
                             memory, False, "decode") for t in range(count))


def embedding_params(arch: Arch, name: str) -> int:
    """Token and position tables and the final LayerNorm of a stack. An encoder-decoder shares one
    token table of width max(encoder embed, decoder embed): the decoder's part counts its first
    decoder-embed columns, the encoder's part the columns only it uses (often none)."""
    stack = getattr(arch, name)
    tok = arch.vocab_size * stack.embed
    if arch.kind == "encoder-decoder" and name == "encoder":
        tok = arch.vocab_size * max(0, stack.embed - arch.decoder.embed)
    positions = arch.max_len * stack.embed if arch.positions == "learned" else 0  # rotary: no table
    return tok + positions + 2 * stack.embed


def head_params(arch: Arch) -> int:
    """A classifier's head (one row and bias per label over the encoder's width); 0 for a tied LM head."""
    return arch.classes * (arch.encoder.embed + 1) if arch.classes is not None else 0


BYTES = {"fp32": 4, "int8": 1, "bf16": 2, "fp16": 2}


def weight_bytes(precision: str) -> int:
    return BYTES[precision]


def activation_bytes(precision: str) -> int:
    """int8 here is dynamic quantization: activations stay fp32 between layers."""
    return 4 if precision == "int8" else BYTES[precision]


def analytic_cost(arch: Arch, workload: Workload | None = None, dtype_bytes: int | None = None) -> Cost:
    """Parameters, FLOPs and bytes of `arch` running `workload` (default: one forward of 64 tokens),
    at the arch's precision (`dtype_bytes` overrides the bytes per activation value). Memoised: a
    search asks for the same archs' costs again (point prediction, both ends of a range, seeding)."""
    return _analytic_cost(arch, workload or Workload(), dtype_bytes)


def positions_needed(kind: str, w: Workload) -> int:
    """The context a model of `kind` needs for workload `w`: a decoder holds prompt and generated
    tokens, an encoder(-decoder) the source (and, decoding, at most max_len target tokens)."""
    return w.seq_len + w.gen_tokens if kind == "decoder" else max(w.seq_len, w.gen_tokens)


def check_workload(arch: Arch, w: Workload) -> None:
    """ArchError when `arch` cannot run workload `w` (positions beyond its context, an encoder asked to generate)."""
    if positions_needed(arch.kind, w) > arch.max_len:
        raise ArchError(f"workload {w} needs {positions_needed(arch.kind, w)} positions "
                        f"but the model has max_len={arch.max_len}")
    if w.gen_tokens and arch.kind == "encoder":
        raise ArchError("workload: an encoder-only model does not generate; set gen=0")
    if arch.kind == "encoder-decoder" and w.gen_tokens > arch.max_len:
        raise ArchError(f"workload gen={w.gen_tokens} exceeds max_len={arch.max_len}")


@functools.lru_cache(maxsize=1 << 15)
def _analytic_cost(arch: Arch, w: Workload, dtype_bytes: int | None) -> Cost:
    n, b, db = w.seq_len, w.batch, dtype_bytes or activation_bytes(arch.precision)
    check_workload(arch, w)

    runs: list[tuple[str, int, int, int]] = []
    if arch.kind == "encoder":
        runs += _stack_pass(arch, "encoder", 0, n, b, n, db)
    elif arch.kind == "decoder":
        if w.generation:  # the prompt into the cache, then one token per step
            runs += _stack_pass(arch, "decoder", 0, n, b, 1, db, mode="prefill" if n > 1 else "first")
            runs += _decode_passes(arch, n, w.gen_tokens, b, db)
        else:
            runs += _stack_pass(arch, "decoder", 0, n, b, n, db)
    else:
        runs += _stack_pass(arch, "encoder", 0, n, b, 0, db)
        if w.generation:  # from BOS, one token per step; the memory's K/V are projected at step 0
            runs += _stack_pass(arch, "decoder", 0, 1, b, 1, db, memory=n, project_memory=True, mode="first")
            runs += _decode_passes(arch, 1, w.gen_tokens - 1, b, db, memory=n)
        else:
            runs += _stack_pass(arch, "decoder", 0, n, b, n, db, memory=n, project_memory=True)

    flops: dict[str, int] = {}
    moved: dict[str, int] = {}
    ops: dict[str, int] = {}
    for part, f, by, n_ops in runs:
        flops[part] = flops.get(part, 0) + f
        moved[part] = moved.get(part, 0) + by
        ops[part] = ops.get(part, 0) + n_ops
    enc_embed = arch.encoder.embed if arch.encoder else None
    params = {}
    for name, stack in arch.stacks:
        for i, layer in enumerate(stack.layers):
            params[f"{name}.layers[{i}]"] = layer_params(layer, stack.embed, arch.head_dim, arch.max_len, enc_embed)
        params[f"{name}.embedding"] = embedding_params(arch, name)
    if arch.classes is not None:
        params["encoder.head"] = head_params(arch)
    parts = tuple(PartCost(p, params.get(p, 0), flops[p], moved[p], ops[p]) for p in flops)
    return Cost(workload=w, parts=parts, invocations=tuple(runs))
