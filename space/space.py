"""The search space: which archs exist, and the operations the searches need on them.

Sampling is per gene (HAT, Once-for-All): depth uniform, then each layer's choices uniform; the
attention *type* is drawn first and its parameter (window, projected length) second, so every type
is equally represented whatever the number of its parameter values.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

from space.arch import ATTENTION_TYPES, Arch, ArchError, Layer, Stack
from space.cost import Workload

Rng = random.Random | int | None


def make_rng(rng: Rng) -> random.Random:
    """Every operation takes its randomness explicitly: a Random, or a seed."""
    return rng if isinstance(rng, random.Random) else random.Random(rng)


@dataclass(frozen=True)
class StackSpace:
    """The choices of one stack (encoder or decoder)."""

    embed: tuple[int, ...]
    depth: tuple[int, ...]
    heads: tuple[int, ...]
    kv_heads: tuple[int, ...] | None  # None: plain multi-head attention (kv_heads = heads)
    ffn: tuple[int, ...] | None  # absolute FFN widths ...
    ffn_ratio: tuple[float, ...] | None  # ... or ratios of the stack's embed width
    attention: tuple[tuple[str, tuple[int, ...] | None], ...]  # (type, its parameter's choices)
    cross_layers: tuple[int, ...] | None = None  # decoder of encoder-decoder only
    cross_heads: tuple[int, ...] | None = None

    def ffn_choices(self, embed: int) -> tuple[int, ...]:
        if self.ffn is not None:
            return self.ffn
        return tuple(int(round(r * embed)) for r in self.ffn_ratio)

    def kv_choices(self, heads: int) -> tuple[int, ...]:
        return (heads,) if self.kv_heads is None else tuple(k for k in self.kv_heads if heads % k == 0)

    def attn_options(self) -> list[tuple[str, int | None]]:
        return [(t, p) for t, params in self.attention for p in (params or (None,))]

    def cross_choices(self, enc_depth: int) -> tuple[int, ...]:
        return tuple(c for c in self.cross_layers if c <= enc_depth)

    def layer_count(self, enc_depth: int | None) -> int:
        """Distinct layers this stack can hold (given the encoder depth, for cross-attention)."""
        n = sum(len(self.kv_choices(h)) for h in self.heads) * len(self.ffn_choices(self.embed[0]))
        n *= len(self.attn_options())
        if self.cross_layers is not None:
            n *= len(self.cross_choices(enc_depth)) * len(self.cross_heads)
        return n

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"embed": list(self.embed), "depth": list(self.depth), "heads": list(self.heads)}
        if self.kv_heads is not None:
            d["kv_heads"] = list(self.kv_heads)
        if self.ffn is not None:
            d["ffn"] = list(self.ffn)
        else:
            d["ffn_ratio"] = list(self.ffn_ratio)
        d["attention"] = {t: ({ATTENTION_TYPES[t].param: list(p)} if p else {}) for t, p in self.attention}
        if self.cross_layers is not None:
            d["cross_layers"] = list(self.cross_layers)
            d["cross_heads"] = list(self.cross_heads)
        return d


@dataclass(frozen=True)
class SearchSpace:
    name: str
    kind: str
    head_dim: int
    vocab_size: int
    max_len: int
    encoder: StackSpace | None = None
    decoder: StackSpace | None = None
    workload: Workload = field(default_factory=Workload)
    description: str = ""
    tokenizer_spec: str = ""  # the YAML's `tokenizer:` (bytes, bpe, bpe:N, a tokenizer.json); "" = by vocabulary
    precision: tuple[str, ...] = ("fp32",)  # the numeric precisions its models may run at; the first is the reference
    positions: str = "learned"  # space.arch.POSITIONS: a learned table, or rotary (every arch of the space alike)
    classes: int | None = None  # encoder spaces: the labels of the classification head

    @property
    def tokenizer(self) -> str:
        """The tokenizer training uses unless told otherwise: the space's own, else bytes for a
        259-id vocabulary (256 bytes + 3 specials) and a BPE of the vocabulary's size for any other."""
        return self.tokenizer_spec or ("bytes" if self.vocab_size == 259 else "bpe")

    @property
    def stacks(self) -> tuple[tuple[str, StackSpace], ...]:
        return tuple((n, s) for n, s in (("encoder", self.encoder), ("decoder", self.decoder)) if s)

    # ---- building archs ---------------------------------------------------------------------------
    def _arch(self, stacks: dict[str, Stack], precision: str | None = None) -> Arch:
        return Arch(kind=self.kind, head_dim=self.head_dim, vocab_size=self.vocab_size,
                    max_len=self.max_len, precision=precision or self.precision[0], positions=self.positions,
                    classes=self.classes, **stacks)

    def _draw_precision(self, rng: random.Random) -> str:
        # drawn last, and only where there is a choice: a one-precision space samples as it always did
        return rng.choice(self.precision) if len(self.precision) > 1 else self.precision[0]

    def restricted(self, precisions: Iterable[str]) -> "SearchSpace":
        """This space with only the precisions a device runs (its other choices unchanged)."""
        keep = tuple(p for p in self.precision if p in set(precisions))
        if not keep:
            raise ArchError(f"space {self.name!r} offers precisions {', '.join(self.precision)}, none of which the "
                            f"device runs ({', '.join(precisions)})")
        return replace(self, precision=keep)

    def with_attention(self, types: Iterable[str]) -> "SearchSpace":
        """This space with only the attention types `types` in every stack (their parameters'
        choices unchanged): a search for the best arch of one kind, or of a few."""
        want = list(dict.fromkeys(types))
        offered = {t for _, ss in self.stacks for t, _ in ss.attention}
        unknown = [t for t in want if t not in offered]
        if unknown or not want:
            raise ArchError(f"attention {','.join(unknown) or '(none)'}: space {self.name!r} offers "
                            f"{', '.join(sorted(offered))}")
        stacks = {}
        for name, ss in self.stacks:
            keep = tuple((t, p) for t, p in ss.attention if t in want)
            if not keep:
                raise ArchError(f"attention {','.join(want)}: the {name} of space {self.name!r} offers none of "
                                f"them ({', '.join(t for t, _ in ss.attention)})")
            stacks[name] = replace(ss, attention=keep)
        return replace(self, **stacks)

    def _sample_layer(self, ss: StackSpace, rng: random.Random, enc_depth: int | None) -> dict[str, Any]:
        genes: dict[str, Any] = {}
        for gene in _GENES:
            if gene.startswith("cross") and ss.cross_layers is None:
                continue
            genes[gene] = _resample(gene, genes, ss, rng, enc_depth)
        return genes

    def sample(self, rng: Rng = None) -> Arch:
        """A uniform per-gene sample."""
        rng = make_rng(rng)
        stacks, enc_depth = {}, None
        for name, ss in self.stacks:
            embed, depth = rng.choice(ss.embed), rng.choice(ss.depth)
            layers = [self._sample_layer(ss, rng, enc_depth) for _ in range(depth)]
            stacks[name] = _build_stack(ss, embed, layers)
            enc_depth = depth if name == "encoder" else enc_depth
        return self._arch(stacks, self._draw_precision(rng))

    def _extreme(self, pick, rng: random.Random | None = None) -> Arch:
        stacks, enc_depth = {}, None
        for name, ss in self.stacks:
            embed, depth = pick(ss.embed), pick(ss.depth)
            heads = pick(ss.heads)
            layers = []
            for _ in range(depth):
                if rng is None:  # the space's reference (first) type on every layer
                    attn, params = ss.attention[0]
                    kind = (attn, pick(params) if params else None)
                else:  # a uniform draw of type (and its parameter) per layer
                    kind = _resample("attn", {}, ss, rng, enc_depth)
                genes = {"attn": kind, "heads": heads, "kv_heads": pick(ss.kv_choices(heads)),
                         "ffn": ss.ffn_choices(embed).index(pick(ss.ffn_choices(embed)))}
                if ss.cross_layers is not None:
                    genes["cross_layers"] = pick(ss.cross_choices(enc_depth))
                    genes["cross_heads"] = pick(ss.cross_heads)
                layers.append(genes)
            stacks[name] = _build_stack(ss, embed, layers)
            enc_depth = depth if name == "encoder" else enc_depth
        return self._arch(stacks)

    def smallest(self, rng: Rng | None = None) -> Arch:
        """Every width and depth at its minimum (the sandwich rule's lower bread); the attention
        type of every layer is the space's first, or, given `rng`, drawn per layer."""
        return self._extreme(min, None if rng is None else make_rng(rng))

    def largest(self, rng: Rng | None = None) -> Arch:
        """Every width and depth at its maximum: the supernet's full model and the teacher; the
        attention type of every layer is the space's first, or, given `rng`, drawn per layer."""
        return self._extreme(max, None if rng is None else make_rng(rng))

    # ---- evolution operators ----------------------------------------------------------------------
    def mutate(self, arch: Arch, rng: Rng = None, prob: float = 0.3) -> Arch:
        """Resamples each gene with probability `prob` (HAT: 0.3); the result is always a member."""
        self.require(arch)
        rng = make_rng(rng)
        precision = arch.precision
        stacks, enc_depth = {}, None
        for name, ss in self.stacks:
            embed, layers = _genome(ss, getattr(arch, name))
            if rng.random() < prob:
                embed = rng.choice(ss.embed)
            depth = rng.choice(ss.depth) if rng.random() < prob else len(layers)
            layers = layers[:depth] + [self._sample_layer(ss, rng, enc_depth)
                                       for _ in range(depth - len(layers))]
            for genes in layers:
                for gene in list(genes):
                    if rng.random() < prob:
                        genes[gene] = _resample(gene, genes, ss, rng, enc_depth)
                _repair(genes, ss, rng, enc_depth)
            stacks[name] = _build_stack(ss, embed, layers)
            enc_depth = depth if name == "encoder" else enc_depth
        if len(self.precision) > 1 and rng.random() < prob:
            precision = rng.choice(self.precision)
        return self._arch(stacks, precision)

    def crossover(self, a: Arch, b: Arch, rng: Rng = None) -> Arch:
        """Each gene from either parent with equal odds; layers only one parent has come from it."""
        self.require(a)
        self.require(b)
        rng = make_rng(rng)
        stacks, enc_depth = {}, None
        for name, ss in self.stacks:
            (ea, la), (eb, lb) = _genome(ss, getattr(a, name)), _genome(ss, getattr(b, name))
            embed = ea if rng.random() < 0.5 else eb
            depth = len(la) if rng.random() < 0.5 else len(lb)
            layers = []
            for i in range(depth):
                if i < len(la) and i < len(lb):
                    genes = {g: (la[i] if rng.random() < 0.5 else lb[i])[g] for g in la[i]}
                else:
                    genes = dict((la if i < len(la) else lb)[i])
                _repair(genes, ss, rng, enc_depth)
                layers.append(genes)
            stacks[name] = _build_stack(ss, embed, layers)
            enc_depth = depth if name == "encoder" else enc_depth
        precision = (a.precision if rng.random() < 0.5 else b.precision) if len(self.precision) > 1 else a.precision
        return self._arch(stacks, precision)

    # ---- membership and size ----------------------------------------------------------------------
    def check(self, arch: Arch) -> str | None:
        """Why `arch` is not in this space (one line), or None when it is."""
        if not isinstance(arch, Arch):
            return f"expected an Arch, got {type(arch).__name__}"
        for attr in ("kind", "head_dim", "vocab_size", "max_len", "positions", "classes"):
            if getattr(arch, attr) != getattr(self, attr):
                return f"arch.{attr}={getattr(arch, attr)!r} but space {self.name!r} has {getattr(self, attr)!r}"
        if arch.precision not in self.precision:
            return _not_in("precision", arch.precision, self.precision)
        for name, ss in self.stacks:
            stack = getattr(arch, name)
            if stack.embed not in ss.embed:
                return _not_in(f"{name}.embed", stack.embed, ss.embed)
            if stack.depth not in ss.depth:
                return _not_in(f"{name}.depth", stack.depth, ss.depth)
            for i, layer in enumerate(stack.layers):
                where = f"{name}.layers[{i}]"
                options = ss.attn_options()
                param = ATTENTION_TYPES[layer.attn].param
                value = getattr(layer, param) if param else None
                if (layer.attn, value) not in options:
                    shown = [t if p is None else f"{t}({ATTENTION_TYPES[t].param}={p})" for t, p in options]
                    got = layer.attn if value is None else f"{layer.attn}({param}={value})"
                    return _not_in(f"{where}.attn", got, shown)
                if layer.heads not in ss.heads:
                    return _not_in(f"{where}.heads", layer.heads, ss.heads)
                if layer.kv_heads not in ss.kv_choices(layer.heads):
                    return _not_in(f"{where}.kv_heads", layer.kv_heads, ss.kv_choices(layer.heads))
                if layer.ffn not in ss.ffn_choices(stack.embed):
                    return _not_in(f"{where}.ffn", layer.ffn, ss.ffn_choices(stack.embed))
                if ss.cross_layers is not None:
                    if layer.cross_layers not in ss.cross_layers:
                        return _not_in(f"{where}.cross_layers", layer.cross_layers, ss.cross_layers)
                    if layer.cross_heads not in ss.cross_heads:
                        return _not_in(f"{where}.cross_heads", layer.cross_heads, ss.cross_heads)
        return None

    def contains(self, arch: Arch) -> bool:
        return self.check(arch) is None

    def __contains__(self, arch: Arch) -> bool:
        return self.contains(arch)

    def require(self, arch: Arch) -> Arch:
        reason = self.check(arch)
        if reason:
            raise ArchError(f"not in space {self.name!r}: {reason}")
        return arch

    def size(self) -> int:
        """The exact number of distinct archs (a Python int: it may exceed 10^30)."""
        def stack_count(ss: StackSpace, enc_depth: int | None) -> int:
            c = ss.layer_count(enc_depth)
            return len(ss.embed) * sum(c ** d for d in ss.depth)
        if self.kind != "encoder-decoder":
            return len(self.precision) * stack_count(*[(ss, None) for _, ss in self.stacks][0])
        enc, dec = self.encoder, self.decoder
        enc_per_depth = {d: len(enc.embed) * enc.layer_count(None) ** d for d in enc.depth}
        return len(self.precision) * sum(n * stack_count(dec, d) for d, n in enc_per_depth.items())

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "description": self.description, "kind": self.kind,
                             "head_dim": self.head_dim, "vocab_size": self.vocab_size, "max_len": self.max_len,
                             "workload": self.workload.to_dict()}
        if self.tokenizer_spec:
            d["tokenizer"] = self.tokenizer_spec
        if self.precision != ("fp32",):
            d["precision"] = list(self.precision)
        if self.positions != "learned":
            d["positions"] = self.positions
        if self.classes is not None:
            d["classes"] = self.classes
        for name, ss in self.stacks:
            d[name] = ss.to_dict()
        return d


_GENES = ("attn", "heads", "kv_heads", "ffn", "cross_layers", "cross_heads")
def _not_in(where: str, value: Any, allowed: Any) -> str:
    return f"{where}={value} is not in the space; allowed: {', '.join(str(a) for a in allowed)}"


def _resample(gene: str, genes: dict[str, Any], ss: StackSpace, rng: random.Random, enc_depth: int | None) -> Any:
    """A fresh value for one gene, consistent with the genes it depends on."""
    if gene == "attn":
        kind, params = rng.choice(ss.attention)
        return kind, (rng.choice(params) if params else None)
    if gene == "heads":
        return rng.choice(ss.heads)
    if gene == "kv_heads":
        return rng.choice(ss.kv_choices(genes["heads"]))
    if gene == "ffn":  # an index into the stack's FFN choices, so it survives an embed change
        return rng.randrange(len(ss.ffn_choices(ss.embed[0])))
    if gene == "cross_layers":
        return rng.choice(ss.cross_choices(enc_depth))
    if gene == "cross_heads":
        return rng.choice(ss.cross_heads)
    raise KeyError(gene)


def _repair(genes: dict[str, Any], ss: StackSpace, rng: random.Random, enc_depth: int | None) -> None:
    """Re-draws genes a change of another gene made invalid (kv must divide heads, cross ≤ depth)."""
    if genes["kv_heads"] not in ss.kv_choices(genes["heads"]):
        genes["kv_heads"] = _resample("kv_heads", genes, ss, rng, enc_depth)
    if "cross_layers" in genes and genes["cross_layers"] not in ss.cross_choices(enc_depth):
        genes["cross_layers"] = _resample("cross_layers", genes, ss, rng, enc_depth)


def _genome(ss: StackSpace, stack: Stack) -> tuple[int, list[dict[str, Any]]]:
    layers = []
    for layer in stack.layers:
        param = ATTENTION_TYPES[layer.attn].param
        genes = {"attn": (layer.attn, getattr(layer, param) if param else None), "heads": layer.heads,
                 "kv_heads": layer.kv_heads, "ffn": ss.ffn_choices(stack.embed).index(layer.ffn)}
        if ss.cross_layers is not None:
            genes["cross_layers"], genes["cross_heads"] = layer.cross_layers, layer.cross_heads
        layers.append(genes)
    return stack.embed, layers


def _build_stack(ss: StackSpace, embed: int, layers: list[dict[str, Any]]) -> Stack:
    built = []
    for g in layers:
        kind, value = g["attn"]
        param = ATTENTION_TYPES[kind].param
        built.append(Layer(attn=kind, heads=g["heads"], kv_heads=g["kv_heads"], ffn=ss.ffn_choices(embed)[g["ffn"]],
                           cross_layers=g.get("cross_layers"), cross_heads=g.get("cross_heads"),
                           **({param: value} if param else {})))
    return Stack(embed=embed, layers=tuple(built))


__all__ = ["SearchSpace", "StackSpace", "make_rng"]
