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


def parse_duration(text: str | float | int, what: str = "latency budget") -> float:
    """`"20ms"` -> 0.02 (seconds). A bare number is refused: 20 what, seconds or milliseconds?"""
    match = _NUMBER.match(str(text))
    if match is None:
        raise UserError(f"{what} {text!r}: not a duration; {_EXAMPLES}")
    number, unit = match.groups()
    if not unit:
        raise UserError(f"{what} {text!r} has no unit: did you mean {number}ms or {number}s? {_EXAMPLES}")
    if unit.lower() not in _UNITS and unit not in _UNITS:
        raise UserError(f"{what} {text!r}: unknown unit {unit!r}; use one of s, ms, us, ns ({_EXAMPLES})")
    seconds = float(number) * _UNITS.get(unit, _UNITS.get(unit.lower(), 0.0))
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
