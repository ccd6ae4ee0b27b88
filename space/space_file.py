"""A search space's file: the YAML a user writes (or a shipped one, by name), checked key by key,
into a SearchSpace; every mistake is one ArchError naming where it is."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from space.arch import ATTENTION_TYPES, KINDS, POSITIONS, PRECISIONS, ArchError
from space.cost import Workload
from space.files import check_keys, named_config, read_yaml
from space.space import SearchSpace, StackSpace

_TOP_KEYS = ("name", "description", "kind", "head_dim", "vocab_size", "max_len", "tokenizer", "precision", "positions",
             "classes", "workload", "encoder", "decoder")
_STACK_KEYS = ("embed", "depth", "heads", "kv_heads", "ffn", "ffn_ratio", "attention", "cross_layers", "cross_heads")


def _keys(d: Any, where: str, allowed: tuple[str, ...]) -> dict:
    return check_keys(d, where, allowed, error=ArchError)


def _ints(d: dict, key: str, where: str, required: bool = True, numbers: type = int) -> tuple | None:
    if key not in d:
        if required:
            raise ArchError(f"{where}: missing key {key!r} (a list of choices)")
        return None
    values = d[key] if isinstance(d[key], list) else [d[key]]
    ok = values and all(isinstance(v, (int, float) if numbers is float else int) and not isinstance(v, bool)
                        and v > 0 for v in values)
    if not ok:
        raise ArchError(f"{where}.{key}={d[key]!r} must be a non-empty list of positive numbers")
    if len(set(values)) != len(values):
        raise ArchError(f"{where}.{key}={d[key]!r} lists a value twice")
    return tuple(values)


def _stack_space(d: Any, where: str, causal: bool, cross: bool, max_len: int, rope: bool = False) -> StackSpace:
    d = _keys(d, where, _STACK_KEYS)
    if ("ffn" in d) == ("ffn_ratio" in d):
        raise ArchError(f"{where}: give exactly one of 'ffn' (widths) or 'ffn_ratio' (ratios of embed)")
    att = _keys(d.get("attention", {"softmax": {}}), f"{where}.attention", tuple(ATTENTION_TYPES))
    if not att:
        raise ArchError(f"{where}.attention: list at least one attention type ({', '.join(ATTENTION_TYPES)})")
    attention = []
    for kind, params in att.items():
        spec = ATTENTION_TYPES[kind]
        if causal and not spec.causal:
            ok = ", ".join(n for n, s in ATTENTION_TYPES.items() if s.causal)
            raise ArchError(f"{where}.attention.{kind}: cannot run in a causal (decoder) stack; allowed: {ok}")
        if rope and not spec.rope:
            ok = ", ".join(n for n, s in ATTENTION_TYPES.items() if s.rope)
            raise ArchError(f"{where}.attention.{kind}: takes no rotary positions (positions: rope); allowed: {ok}")
        params = _keys(params or {}, f"{where}.attention.{kind}", (spec.param,) if spec.param else ())
        values = _ints(params, spec.param, f"{where}.attention.{kind}") if spec.param else None
        if spec.param == "proj_len" and max(values) > max_len:
            raise ArchError(f"{where}.attention.linformer.proj_len={max(values)} exceeds max_len={max_len}")
        attention.append((kind, values))
    for key in ("cross_layers", "cross_heads"):
        if (key in d) and not cross:
            raise ArchError(f"{where}.{key}: only the decoder of an encoder-decoder space has cross-attention")
    ss = StackSpace(embed=_ints(d, "embed", where), depth=_ints(d, "depth", where), heads=_ints(d, "heads", where),
                    kv_heads=_ints(d, "kv_heads", where, required=False), ffn=_ints(d, "ffn", where, required=False),
                    ffn_ratio=_ints(d, "ffn_ratio", where, required=False, numbers=float), attention=tuple(attention),
                    cross_layers=_ints(d, "cross_layers", where) if cross else None,
                    cross_heads=(_ints(d, "cross_heads", where) if "cross_heads" in d else _ints(d, "heads", where))
                    if cross else None)
    for h in ss.heads:
        if not ss.kv_choices(h):
            raise ArchError(f"{where}.kv_heads={list(ss.kv_heads)}: none divides heads={h}")
    if ss.ffn_ratio is not None:
        for e in ss.embed:
            if any(abs(r * e - round(r * e)) > 1e-9 for r in ss.ffn_ratio):
                raise ArchError(f"{where}.ffn_ratio={list(ss.ffn_ratio)} gives a fractional width for embed {e}")
    return ss


def space_from_dict(d: Any, where: str = "space") -> SearchSpace:
    d = _keys(d, where, _TOP_KEYS)
    for key in ("name", "kind", "head_dim", "vocab_size", "max_len"):
        if key not in d:
            raise ArchError(f"{where}: missing key {key!r}")
    kind = d["kind"]
    if kind not in KINDS:
        raise ArchError(f"{where}.kind={kind!r} is not a model kind; allowed: {', '.join(KINDS)}")
    for key in ("head_dim", "vocab_size", "max_len"):
        _ints(d, key, where)
        if isinstance(d[key], list):
            raise ArchError(f"{where}.{key} is fixed for a space: give one number, not a list")
    positions = d.get("positions", "learned")
    if positions not in POSITIONS:
        raise ArchError(f"{where}.positions={positions!r}; allowed: {', '.join(POSITIONS)}")
    stacks = {}
    wanted = {"decoder": ("decoder",), "encoder": ("encoder",), "encoder-decoder": ("encoder", "decoder")}[kind]
    for name in ("encoder", "decoder"):
        if name in d and name not in wanted:
            raise ArchError(f"{where}: a {kind} space has no {name!r} section")
        if name in wanted:
            if name not in d:
                raise ArchError(f"{where}: a {kind} space needs a {name!r} section")
            stacks[name] = _stack_space(d[name], f"{where}.{name}", causal=name == "decoder",
                                        cross=name == "decoder" and kind == "encoder-decoder", max_len=d["max_len"],
                                        rope=positions == "rope")
    if kind == "encoder-decoder" and min(stacks["decoder"].cross_layers) > min(stacks["encoder"].depth):
        raise ArchError(f"{where}.decoder.cross_layers: every choice exceeds the smallest encoder depth")
    classes = d.get("classes")
    if kind == "encoder":
        if classes is None:
            raise ArchError(f"{where}: an encoder space classifies; give `classes: N` (how many labels its data has)")
        if not isinstance(classes, int) or isinstance(classes, bool) or classes < 2:
            raise ArchError(f"{where}.classes={classes!r}: the number of labels, an integer of 2 or more")
    elif classes is not None:
        raise ArchError(f"{where}.classes: only an encoder (classifier) space has classes; remove it")
    workload = Workload.from_dict(d.get("workload", {}), f"{where}.workload")
    if kind == "encoder" and workload.gen_tokens:
        raise ArchError(f"{where}.workload.gen_tokens={workload.gen_tokens}: an encoder reads its input in one pass "
                        "and generates nothing; give gen_tokens: 0")
    precision = d.get("precision", ["fp32"])
    precision = [precision] if isinstance(precision, str) else precision
    if (not isinstance(precision, list) or not precision or any(p not in PRECISIONS for p in precision)
            or len(set(precision)) != len(precision)):
        raise ArchError(f"{where}.precision={d.get('precision')!r}: a list of distinct precisions from "
                        f"{', '.join(PRECISIONS)}, the reference first")
    tokenizer = d.get("tokenizer", "")
    if not isinstance(tokenizer, str):
        raise ArchError(f"{where}.tokenizer={tokenizer!r}: write bytes, bpe, bpe:N or the path of a tokenizer.json")
    return SearchSpace(name=str(d["name"]), kind=kind, head_dim=d["head_dim"], vocab_size=d["vocab_size"],
                       max_len=d["max_len"], workload=workload, description=str(d.get("description", "")),
                       tokenizer_spec=tokenizer, precision=tuple(precision), positions=positions, classes=classes,
                       **stacks)


def builtin_spaces() -> list[str]:
    from configs import config_dir
    return sorted(p.stem for p in (config_dir() / "spaces").glob("*.yaml"))


def load_space(name_or_path: str | Path) -> SearchSpace:
    """A shipped space by name (`lm-shakespeare`) or any YAML file."""
    from configs import config_dir
    path = named_config(name_or_path, config_dir() / "spaces", "space", ArchError)
    return space_from_dict(read_yaml(path, ArchError), where=path.name)


__all__ = ["builtin_spaces", "load_space", "space_from_dict"]
