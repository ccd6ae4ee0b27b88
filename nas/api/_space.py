"""Looking at a search space before spending compute on it."""
from __future__ import annotations

from pathlib import Path

from nas.api._common import as_space
from space import Arch, SearchSpace, make_rng
from space.errors import UserError


def sample_archs(space: str | Path | SearchSpace, n: int = 1, *, seed: int = 0, unique: bool = True) -> list[Arch]:
    """`n` archs of `space` (uniform per gene), distinct unless `unique=False`."""
    space = as_space(space)
    if n < 1:
        raise UserError(f"-n {n}: must be at least 1")
    rng = make_rng(seed)
    archs: dict[str, Arch] = {}
    tries = 0
    while len(archs) < n and tries < 100 * n:
        a = space.sample(rng)
        tries += 1
        if unique and a.id in archs:
            continue
        archs[a.id if unique else str(tries)] = a
    return list(archs.values())
