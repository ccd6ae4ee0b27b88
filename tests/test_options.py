"""space.options: the one validator of option records (strategies, predictors, training)."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from space.errors import UserError
from space.options import build, check_fields, check_int, choices, choices_of, flag, fraction, least, positive


@dataclass(frozen=True)
class Toy:
    count: int = 3
    seed: int = 0
    warmup: int = field(default=0, metadata=least(0))
    keep_prob: float = 0.5
    decay: float = 0.01
    lr: float = field(default=1e-3, metadata=positive())
    share: float = field(default=0.5, metadata=fraction(low_open=True))
    mode: str = field(default="a", metadata=choices("a", "b"))
    on: bool = True
    limit: int | None = None

    def __post_init__(self) -> None:
        check_fields(self, label=flag)


@pytest.mark.parametrize("kw, message", [
    (dict(count=0), "--count=0 must be a positive integer"),
    (dict(count=True), "--count=True must be a positive integer"),
    (dict(count=2.0), "--count=2.0 must be a positive integer"),
    (dict(seed=-1), "--seed=-1 must be an integer of at least 0"),
    (dict(warmup=-2), "--warmup=-2 must be an integer of at least 0"),
    (dict(keep_prob=1.5), r"--keep-prob=1.5 must be a probability in \[0, 1\]"),
    (dict(decay=-0.1), "--decay=-0.1 must be at least 0"),
    (dict(decay=float("nan")), "--decay=nan must be a finite number"),
    (dict(lr=0.0), "--lr=0.0 must be a positive number"),
    (dict(share=0.0), r"--share=0.0 must be a fraction in \(0, 1\]"),
    (dict(mode="c"), "--mode 'c': choose one of a, b"),
    (dict(on=1), "--on=1 must be true or false"),
    (dict(limit=0), "--limit=0 must be a positive integer"),
])
def test_each_mistake_is_one_line_naming_the_option(kw, message) -> None:
    with pytest.raises(UserError, match=message) as e:
        Toy(**kw)
    assert "\n" not in str(e.value)


def test_valid_values_pass_and_helpers() -> None:
    Toy(count=1, seed=5, warmup=0, keep_prob=0, decay=0, lr=2, share=1, mode="b", on=False, limit=None)
    assert build(Toy, {"count": 4}, "toy").count == 4
    with pytest.raises(UserError, match="unknown option 'cnt' for toy; allowed: count, seed"):
        build(Toy, {"cnt": 4}, "toy")
    assert choices_of(Toy, "mode") == ("a", "b")
    assert check_int(0, "n", 0) == 0
    with pytest.raises(ValueError, match="n=0 must be a positive integer"):
        check_int(0, "n", 1, ValueError)
