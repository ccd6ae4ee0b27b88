"""The architecture record: one frozen, typed description of a SubTransformer.

An `Arch` is the unit every package passes around: the space samples it, the supernet consumes it,
the profiler times it, the predictor encodes it, the search ranks it. It is complete on its own
(it also carries the task constants head_dim, vocab_size and max_len), so an exported model's config
is exactly its Arch.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

import yaml

from space.files import check_keys
from space.attention import ATTENTION_TYPES
from space.errors import UserError
from space.options import check_int

KINDS = ("decoder", "encoder", "encoder-decoder")
# Numeric precisions a model can run at: fp32 (the default, left out of an arch's dict so that its
# id is what it was before precision existed), int8 (dynamic quantization of every Linear layer:
# int8 weights per output channel, activations quantized on the fly), bf16 and fp16 (weights and
# activations in half precision). Which ones a device runs is its hardware profile's to say.
PRECISIONS = ("fp32", "int8", "bf16", "fp16")
# The autocast dtypes a model may be *run* in over fp32 weights (a fitness, a training run): not an
# arch's precision (PRECISIONS), which is what the deployed model stores and computes in
EVAL_PRECISIONS = ("fp32", "bf16", "fp16")
# How a model knows where a token is: a learned table of max_len rows added to the embeddings (the
# default, left out of an arch's dict), or rotary embeddings of the queries and keys (RoPE, Su et
# al. 2021: no parameters, relative offsets in every attention type that takes it, `AttentionType.rope`)
POSITIONS = ("learned", "rope")


class ArchError(UserError):
    """A bad architecture or space: the message names the field and what is allowed."""


# Attention types: one registered unit each (space/attention/), in the order of the one-hot
# features every encoding uses
ATTENTION_PARAMS = tuple(s.param for s in ATTENTION_TYPES.values() if s.param)


@dataclass(frozen=True)
class Layer:
    """One Transformer layer. Attention width = heads * head_dim (fixed head size)."""

    attn: str
    heads: int
    kv_heads: int  # grouped-query: K/V heads shared by heads // kv_heads query heads
    ffn: int  # FFN hidden width
    window: int | None = None  # sliding-window size (attn == "window" only)
    proj_len: int | None = None  # Linformer projected length (attn == "linformer" only)
    cross_layers: int | None = None  # decoder of encoder-decoder: reads the last k encoder layers
    cross_heads: int | None = None  # decoder of encoder-decoder: cross-attention heads

    def to_dict(self) -> dict[str, Any]:
        # field by field, not dataclasses.asdict (which deep-copies): every arch's id is made from these
        return {k: v for k in _LAYER_FIELDS if (v := getattr(self, k)) is not None}


_LAYER_FIELDS = tuple(f.name for f in fields(Layer))


@dataclass(frozen=True)
class Stack:
    embed: int
    layers: tuple[Layer, ...]

    @property
    def depth(self) -> int:
        return len(self.layers)

    def to_dict(self) -> dict[str, Any]:
        return {"embed": self.embed, "layers": [layer.to_dict() for layer in self.layers]}


@dataclass(frozen=True)
class Arch:
    kind: str
    head_dim: int
    vocab_size: int
    max_len: int
    encoder: Stack | None = None
    decoder: Stack | None = None
    precision: str = "fp32"
    positions: str = "learned"
    classes: int | None = None  # an encoder's classifier: how many labels its pooled head scores
    _id: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate(self)
        object.__setattr__(self, "_id", hashlib.sha256(self.to_json().encode()).hexdigest()[:16])

    # ---- identity -------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """Stable across processes and versions: a hash of the canonical JSON."""
        return self._id

    def __hash__(self) -> int:
        return hash(self._id)

    @property
    def stacks(self) -> tuple[tuple[str, Stack], ...]:
        return tuple((n, s) for n, s in (("encoder", self.encoder), ("decoder", self.decoder)) if s)

    # ---- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "head_dim": self.head_dim,
                             "vocab_size": self.vocab_size, "max_len": self.max_len}
        for name, stack in self.stacks:
            d[name] = stack.to_dict()
        if self.precision != "fp32":
            d["precision"] = self.precision
        if self.positions != "learned":
            d["positions"] = self.positions
        if self.classes is not None:
            d["classes"] = self.classes
        return d

    def with_precision(self, precision: str) -> "Arch":
        """The same layers at another precision."""
        return Arch(self.kind, self.head_dim, self.vocab_size, self.max_len, self.encoder, self.decoder, precision,
                    self.positions, self.classes)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())

    @classmethod
    def from_dict(cls, d: Any, where: str = "arch") -> "Arch":
        d = _mapping(d, where, required=("kind", "head_dim", "vocab_size", "max_len"),
                     allowed=("kind", "head_dim", "vocab_size", "max_len", "encoder", "decoder", "precision",
                              "positions", "classes"))
        stacks = {n: _stack_from_dict(d[n], f"{where}.{n}") for n in ("encoder", "decoder") if n in d}
        return cls(kind=d["kind"], head_dim=d["head_dim"], vocab_size=d["vocab_size"],
                   max_len=d["max_len"], precision=d.get("precision", "fp32"),
                   positions=d.get("positions", "learned"), classes=d.get("classes"), **stacks)

    @classmethod
    def from_json(cls, text: str) -> "Arch":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_yaml(cls, text: str) -> "Arch":
        return cls.from_dict(yaml.safe_load(text))


def _mapping(d: Any, where: str, required: Iterable[str], allowed: Iterable[str]) -> dict:
    return check_keys(d, where, allowed, required, error=ArchError)


def _stack_from_dict(d: Any, where: str) -> Stack:
    d = _mapping(d, where, required=("embed", "layers"), allowed=("embed", "layers"))
    if not isinstance(d["layers"], list):
        raise ArchError(f"{where}.layers: expected a list of layers")
    names = tuple(f.name for f in fields(Layer))
    layers = tuple(Layer(**_mapping(layer, f"{where}.layers[{i}]", ("attn", "heads", "kv_heads", "ffn"), names))
                   for i, layer in enumerate(d["layers"]))
    return Stack(embed=d["embed"], layers=layers)


# ---- structural validation (membership of a particular space is space.contains) ---------------

def _positive_int(value: Any, where: str) -> None:
    check_int(value, where, 1, ArchError)


def validate(arch: Arch) -> None:
    """Checks the rules every arch obeys, whatever the space; raises ArchError naming the field."""
    if arch.kind not in KINDS:
        raise ArchError(f"arch.kind={arch.kind!r} is not a model kind; allowed: {', '.join(KINDS)}")
    if arch.precision not in PRECISIONS:
        raise ArchError(f"arch.precision={arch.precision!r}; allowed: {', '.join(PRECISIONS)}")
    if arch.positions not in POSITIONS:
        raise ArchError(f"arch.positions={arch.positions!r}; allowed: {', '.join(POSITIONS)}")
    if arch.positions == "rope" and arch.head_dim % 2:
        raise ArchError(f"arch.head_dim={arch.head_dim}: rotary positions pair the dimensions of a head; "
                        "give an even head_dim")
    for name in ("head_dim", "vocab_size", "max_len"):
        _positive_int(getattr(arch, name), f"arch.{name}")
    if arch.kind == "encoder":
        if arch.classes is None:
            raise ArchError("arch.classes: an encoder model classifies; give the number of labels (2 or more)")
        check_int(arch.classes, "arch.classes", 2, ArchError)
    elif arch.classes is not None:
        raise ArchError(f"arch.classes is only for encoder (classifier) models, not {arch.kind}; remove it")
    wanted = {"decoder": ("decoder",), "encoder": ("encoder",), "encoder-decoder": ("encoder", "decoder")}[arch.kind]
    for name in ("encoder", "decoder"):
        present = getattr(arch, name) is not None
        if present != (name in wanted):
            verb = "needs" if name in wanted else "must not have"
            raise ArchError(f"arch: a {arch.kind} model {verb} an {name} stack" if name == "encoder"
                            else f"arch: a {arch.kind} model {verb} a {name} stack")
    for name, stack in arch.stacks:
        if not isinstance(stack, Stack):
            raise ArchError(f"arch.{name}: expected a Stack, got {type(stack).__name__}")
        _positive_int(stack.embed, f"{name}.embed")
        if not stack.layers:
            raise ArchError(f"{name}.layers: a stack needs at least one layer")
        causal = name == "decoder"
        cross = arch.kind == "encoder-decoder" and name == "decoder"
        for i, layer in enumerate(stack.layers):
            _validate_layer(layer, f"{name}.layers[{i}]", arch, causal, cross)


def _validate_layer(layer: Layer, where: str, arch: Arch, causal: bool, cross: bool) -> None:
    spec = ATTENTION_TYPES.get(layer.attn)
    if spec is None:
        raise ArchError(f"{where}.attn={layer.attn!r} is not an attention type; "
                        f"allowed: {', '.join(ATTENTION_TYPES)}")
    if causal and not spec.causal:
        ok = ", ".join(n for n, s in ATTENTION_TYPES.items() if s.causal)
        raise ArchError(f"{where}.attn={layer.attn!r} cannot run in a causal (decoder) stack; allowed: {ok}")
    if arch.positions == "rope" and not spec.rope:
        ok = ", ".join(n for n, s in ATTENTION_TYPES.items() if s.rope)
        raise ArchError(f"{where}.attn={layer.attn!r} takes no rotary positions (positions: rope); allowed: {ok}")
    for name in ("heads", "kv_heads", "ffn"):
        _positive_int(getattr(layer, name), f"{where}.{name}")
    if layer.heads % layer.kv_heads:
        divisors = ", ".join(str(k) for k in range(1, layer.heads + 1) if layer.heads % k == 0)
        raise ArchError(f"{where}.kv_heads={layer.kv_heads} must divide heads={layer.heads}; allowed: {divisors}")
    for param in ATTENTION_PARAMS:
        value = getattr(layer, param)
        if param == spec.param:
            _positive_int(value, f"{where}.{param}")
        elif value is not None:
            raise ArchError(f"{where}.{param} is only for attn={_owner(param)!r}, not {layer.attn!r}; remove it")
    if spec.param == "proj_len" and layer.proj_len > arch.max_len:
        raise ArchError(f"{where}.proj_len={layer.proj_len} exceeds max_len={arch.max_len}")
    for name in ("cross_layers", "cross_heads"):
        value = getattr(layer, name)
        if cross:
            _positive_int(value, f"{where}.{name}")
        elif value is not None:
            raise ArchError(f"{where}.{name} is only for decoder layers of an encoder-decoder; remove it")
    if cross and layer.cross_layers > arch.encoder.depth:
        raise ArchError(f"{where}.cross_layers={layer.cross_layers} exceeds the encoder depth "
                        f"{arch.encoder.depth}; allowed: 1..{arch.encoder.depth}")


def _owner(param: str) -> str:
    return next(n for n, s in ATTENTION_TYPES.items() if s.param == param)


# ---- files ------------------------------------------------------------------------------------

class _FlowDict(dict):
    """A mapping dumped on one line: keeps layer lists readable."""


yaml.SafeDumper.add_representer(
    _FlowDict, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True))


def dump_yaml(d: Any) -> str:
    def flow_layers(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: ([_FlowDict(x) for x in v] if k == "layers" else flow_layers(v)) for k, v in obj.items()}
        if isinstance(obj, list):
            return [flow_layers(x) for x in obj]
        return obj
    return yaml.safe_dump(flow_layers(d), sort_keys=False, width=120)


def load_archs(path: str | Path) -> list[Arch]:
    """Reads one arch (a mapping) or several (a list, as `nas space sample` prints) from YAML/JSON."""
    path = Path(path)
    if not path.is_file():
        raise ArchError(f"{path}: no such arch file; write one with `nas space sample NAME -n 1 > {path.name}`")
    from space.files import read_yaml
    data = read_yaml(path, ArchError)
    items = data if isinstance(data, list) else [data]
    if not items or items == [None]:
        raise ArchError(f"{path}: holds no arch")
    if not all(isinstance(item, dict) for item in items):
        raise ArchError(f"{path}: not an arch file: expected a YAML mapping (one arch) or a list of them, "
                        f"as `nas space sample NAME` writes")
    archs = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]" if isinstance(data, list) else str(path)
        try:
            archs.append(Arch.from_dict(item, where=where))
        except TypeError as e:  # a wrongly typed field that slipped past the key checks
            raise ArchError(f"{where}: {e}") from None
        except ArchError as e:
            msg = str(e)
            raise ArchError(msg if msg.startswith(where) else f"{where}: {msg}") from None
    return archs


def save_archs(archs: Iterable[Arch], path: str | Path) -> None:
    from space.files import atomic_write_text
    atomic_write_text(path, dump_yaml([a.to_dict() for a in archs]))
