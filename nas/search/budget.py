"""Latency budgets as the user writes them (`20ms`, `0.02s`, `250us`) and as we print them."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from space.errors import UserError

# seconds per unit; "us" and "µs" both, since only one of them is on most keyboards
_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_NUMBER = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zA-Zµ]*)\s*$")
_EXAMPLES = "write e.g. 20ms, 0.02s, 1.5s or 250us"


def _quantity(text: str | float | int, units: dict[str, float], what: str, kind: str, examples: str,
              guess: str, listed: str) -> tuple[str, float]:
    """(the text, its number times its unit's scale): one reading of "20ms" and "8MB" alike, with
    one clear line for a missing or unknown unit."""
    match = _NUMBER.match(str(text))
    if match is None:
        raise UserError(f"{what} {text!r}: not a {kind}; {examples}")
    number, unit = match.groups()
    if not unit:
        raise UserError(f"{what} {text!r} has no unit: did you mean {guess.format(n=number)}? {examples}")
    scale = units.get(unit, units.get(unit.lower()))
    if scale is None:
        raise UserError(f"{what} {text!r}: unknown unit {unit!r}; use {listed}")
    return str(text), float(number) * scale


def parse_duration(text: str | float | int, what: str = "latency budget") -> float:
    """`"20ms"` -> 0.02 (seconds). A bare number is refused: 20 what, seconds or milliseconds?"""
    _, seconds = _quantity(text, _UNITS, what, "duration", _EXAMPLES, "{n}ms or {n}s",
                           f"one of s, ms, us, ns ({_EXAMPLES})")
    if not math.isfinite(seconds) or seconds <= 0:
        raise UserError(f"{what} {text!r} must be positive and finite; {_EXAMPLES}")
    return seconds


def format_duration(seconds: float) -> str:
    """3 significant digits in the unit that keeps the number >= 1: 0.0123 -> '12.3 ms'."""
    if not math.isfinite(seconds):
        return str(seconds)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


@dataclass(frozen=True)
class Budget:
    """A latency budget: the one place that decides whether an arch's latency bound is within it.
    `text` is the budget as the user wrote it (printed back to them); it is never re-parsed."""

    seconds: float
    text: str = ""

    def __post_init__(self) -> None:
        s = self.seconds
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
            raise UserError(f"latency budget {s!r} must be a positive number of seconds")
        object.__setattr__(self, "seconds", float(s))
        if not self.text:
            object.__setattr__(self, "text", f"{self.seconds:g}s")

    @classmethod
    def of(cls, value: "Budget | str | float | int") -> "Budget":
        """A budget from what a user passes: a duration string ("20ms"), seconds, or a Budget."""
        if isinstance(value, Budget):
            return value
        if isinstance(value, str):
            return cls(parse_duration(value), value)
        return cls(value)

    def admits(self, bound: float) -> bool:
        """Whether an arch whose latency bound is `bound` seconds is within the budget."""
        return bound <= self.seconds

    def used(self, bound: float) -> float:
        """The share of the budget a latency bound takes (bound / budget)."""
        return float(bound) / self.seconds

    def __str__(self) -> str:
        return self.text


# bytes per unit: decimal (kB, MB, GB as storage is sold) and binary (KiB, MiB, GiB as RAM is counted)
_BYTE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_BYTE_EXAMPLES = "write e.g. 8MB, 512KiB or 1.5GB"


def parse_bytes(text: str | int | float, what: str = "memory budget") -> int:
    """`"8MB"` -> 8,000,000 and `"8MiB"` -> 8,388,608 (bytes). A bare number is refused."""
    _, size = _quantity(text, _BYTE_UNITS, what, "size", _BYTE_EXAMPLES, "{n}MB", "B, kB, MB, GB, KiB, MiB or GiB")
    if not math.isfinite(size) or size < 1:
        raise UserError(f"{what} {text!r} must be at least one byte; {_BYTE_EXAMPLES}")
    return int(size)


def format_bytes(n: float) -> str:
    """3 significant digits in decimal units: 17039360 -> '17 MB'."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


@dataclass(frozen=True)
class MemoryBudget:
    """A memory budget (bytes): the peak inference memory an arch may take for the workload
    (space.memory: weights, decode state, activations)."""

    bytes: int
    text: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.bytes, bool) or not isinstance(self.bytes, int) or self.bytes < 1:
            raise UserError(f"memory budget {self.bytes!r} must be a positive number of bytes")
        if not self.text:
            object.__setattr__(self, "text", format_bytes(self.bytes))

    @classmethod
    def of(cls, value: "MemoryBudget | str | int") -> "MemoryBudget":
        if isinstance(value, MemoryBudget):
            return value
        if isinstance(value, str):
            return cls(parse_bytes(value), value)
        return cls(value)  # bytes: checked by __post_init__

    def admits(self, memory: float) -> bool:
        return memory <= self.bytes

    def used(self, memory: float) -> float:
        return float(memory) / self.bytes

    def __str__(self) -> str:
        return self.text
