"""Uniform random search: the baseline every other strategy must beat."""
from __future__ import annotations

from space import Arch

from nas.search.base import Searcher, register


@register
class RandomSearch(Searcher):
    name = "random"

    def ask(self, n: int) -> list[Arch]:
        # candidate k always comes from the RNG of index k: the sequence does not depend on the batch size
        out = self._propose(n, lambda rng, k: self.space.sample(rng), "draw", first=len(self._seen))
        self._seen.update(a.id for a in out)
        return out
