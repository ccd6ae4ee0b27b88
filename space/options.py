"""One way to check option records: the frozen dataclasses of strategy options, predictor configs and
training settings say in their field types (and, where a type is not enough, in field metadata)
what each option accepts, and `check_fields` enforces it with one clear line per mistake.

    @dataclass(frozen=True)
    class Options:
        population: int = 50                                    # int: an integer >= 1
        seed: int = 0                                           # a field named seed: an integer >= 0
        warmup: int = field(default=0, metadata=least(0))       # an integer >= 0
        mutation_prob: float = 0.3                              # *_prob: a probability in [0, 1]
        decay: float = 0.01                                     # float: a finite number >= 0
        lr: float = field(default=1e-3, metadata=positive())    # a finite number > 0
        sampling: str = field(default="a", metadata=choices("a", "b"))

        def __post_init__(self):
            check_fields(self, label=lambda name: f"option {name}")
"""
from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, Callable, Mapping

from space.errors import UserError

Label = Callable[[str], str]


def least(n: float) -> dict[str, Any]:
    """Field metadata: the smallest value allowed (ints default to 1, a seed to 0, floats to 0)."""
    return {"least": n}


def positive() -> dict[str, Any]:
    """Field metadata: a number strictly above zero."""
    return {"positive": True}


def choices(*allowed: str) -> dict[str, Any]:
    """Field metadata: one of these strings."""
    return {"choices": tuple(allowed)}


def fraction(low_open: bool = False, high_open: bool = False) -> dict[str, Any]:
    """Field metadata: a number in [0, 1] (either end open)."""
    return {"fraction": (low_open, high_open)}


def choices_of(cls: type, name: str) -> tuple[str, ...]:
    """The strings field `name` of dataclass `cls` accepts (its `choices` metadata): what a CLI offers."""
    return next(f.metadata["choices"] for f in fields(cls) if f.name == name)


def flag(name: str) -> str:
    """The command-line spelling of a field: `grad_accum` -> `--grad-accum`."""
    return "--" + name.replace("_", "-")


def check_int(value: Any, label: str, at_least: int = 1, error: type[Exception] = UserError) -> int:
    """`value` if it is an integer (not a bool) of at least `at_least`; else one line naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < at_least:
        want = "a positive integer" if at_least == 1 else f"an integer of at least {at_least}"
        raise error(f"{label}={value!r} must be {want}")
    return value


def _base(type_: Any) -> tuple[str, bool]:
    """(the field's type name, whether None is allowed) from an annotation or its string."""
    text = type_ if isinstance(type_, str) else getattr(type_, "__name__", str(type_))
    parts = [p.strip() for p in text.split("|")]
    optional = "None" in parts
    parts = [p for p in parts if p != "None"]
    return (parts[0] if len(parts) == 1 else text), optional


def check_value(name: str, value: Any, type_: Any, meta: Mapping[str, Any], label: str,
                error: type[Exception] = UserError) -> None:
    kind, optional = _base(type_)
    if value is None and optional:
        return
    if "choices" in meta:
        if value not in meta["choices"]:
            raise error(f"{label} {value!r}: choose one of {', '.join(map(str, meta['choices']))}")
        return
    if kind == "bool":
        if not isinstance(value, bool):
            raise error(f"{label}={value!r} must be true or false")
    elif kind == "int":
        check_int(value, label, meta.get("least", 0 if name == "seed" else 1), error)
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise error(f"{label}={value!r} must be a finite number")
        if name.endswith("_prob") or "fraction" in meta:
            lo_open, hi_open = meta.get("fraction", (False, False))
            if not ((0.0 < value if lo_open else 0.0 <= value) and (value < 1.0 if hi_open else value <= 1.0)):
                span = f"{'(' if lo_open else '['}0, 1{')' if hi_open else ']'}"
                what = "a probability" if name.endswith("_prob") else "a fraction"
                raise error(f"{label}={value!r} must be {what} in {span}")
        if meta.get("positive") and value <= 0:
            raise error(f"{label}={value!r} must be a positive number")
        elif value < meta.get("least", 0.0):
            raise error(f"{label}={value!r} must be at least {meta.get('least', 0.0):g}")


def check_fields(record: Any, label: Label = lambda name: name, error: type[Exception] = UserError) -> None:
    """Checks every field of a dataclass instance against its type and metadata (see the module)."""
    for f in fields(record):
        check_value(f.name, getattr(record, f.name), f.type, f.metadata, label(f.name), error)


def build(cls: type, options: Mapping[str, Any] | None, what: str, error: type[Exception] = UserError) -> Any:
    """`cls(**options)` after refusing an option it does not have, naming `what` and the allowed ones
    (`cls` checks the values itself, in its __post_init__)."""
    allowed = [f.name for f in fields(cls)]
    for key in options or {}:
        if key not in allowed:
            raise error(f"unknown option {key!r} for {what}; allowed: {', '.join(allowed) or 'none'}")
    return cls(**(options or {}))


def parse_pairs(items: tuple[str, ...] | list[str], flag_name: str = "--option") -> dict[str, Any] | None:
    """KEY=VALUE texts as a mapping: integers, decimals and true/false as such, anything else as text;
    a text without `=` is one clear line naming `flag_name`. None when there are no pairs."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UserError(f"{flag_name} {item!r}: give KEY=VALUE, e.g. screen=1")
        value: Any = text
        if text.lower() in ("true", "false"):
            value = text.lower() == "true"
        else:
            for kind in (int, float):
                try:
                    value = kind(text)
                    break
                except ValueError:
                    pass
        out[key] = value
    return out or None
