"""The accuracy model a search learns from its scored archs, and the screening of mutations by it."""
from __future__ import annotations

import hashlib
import math
import random
import statistics

import numpy as np
import pytest

from nas.search import make_searcher
from nas.search.surrogate import LossModel
from space import Arch
from tests.test_search import LM, Synthetic

FIT = Synthetic(LM)


def noise(arch: Arch, scale: float) -> float:
    """A fixed pseudo-random error per arch, as a loss on few batches has."""
    h = int(hashlib.sha256(arch.id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return scale * (2 * h - 1)


def kendall(x, y) -> float:
    pairs = [(i, j) for i in range(len(x)) for j in range(i + 1, len(x))]
    return sum(math.copysign(1, (x[i] - x[j]) * (y[i] - y[j])) for i, j in pairs) / len(pairs)


def test_the_model_ranks_unseen_archs_from_noisy_losses() -> None:
    train = [LM.sample(s) for s in range(150)]
    test = [LM.sample(1000 + s) for s in range(40)]
    model = LossModel(LM, train, [FIT.loss(a) + noise(a, 0.3) for a in train])
    tau = kendall(list(model.predict(test)), [FIT.loss(a) for a in test])
    assert tau > 0.7, tau


def test_the_model_is_deterministic_and_ignores_failures() -> None:
    archs = [LM.sample(s) for s in range(30)]
    losses = [FIT.loss(a) for a in archs]
    a = LossModel(LM, archs, losses).predict(archs[:5])
    b = LossModel(LM, archs + [LM.sample(99)], losses + [math.inf]).predict(archs[:5])
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="at least 2 finite"):
        LossModel(LM, archs[:2], [1.0, math.nan])


def test_screening_proposes_the_predicted_best_of_the_feasible_new_draws() -> None:
    searcher = make_searcher("evolution", LM, FIT.feasible, 0, population=8, sample_size=3, screen=4)
    archs = [a for a in (LM.sample(s) for s in range(60)) if FIT.feasible(a)][:12]
    searcher.tell(archs, [FIT.loss(a) for a in archs], FIT.latency(archs))
    pool = [a for a in (LM.sample(100 + s) for s in range(40))]
    drawn: list[Arch] = []

    def draw(rng: random.Random, k: int) -> Arch:
        drawn.append(pool[len(drawn) % len(pool)])
        return drawn[-1]

    chosen = searcher._screened(draw, 4)(random.Random(0), 0)
    candidates = [a for a in drawn if FIT.feasible(a) and a.id not in searcher._seen][:4]
    assert len(candidates) == 4 and chosen in candidates
    predicted = searcher.accuracy_model().predict(candidates)
    assert chosen == candidates[int(np.argmin(predicted))]
    assert searcher._screened(draw, 1) is draw  # screen 1: no screening


def test_screening_survives_a_run_of_failed_evaluations() -> None:
    searcher = make_searcher("evolution", LM, FIT.feasible, 0, population=8, sample_size=3, seeded=0.0)
    for _ in range(4):
        archs = searcher.ask(4)
        searcher.tell(archs, [math.inf] * len(archs), FIT.latency(archs))
    assert searcher.accuracy_model() is None
    assert len(searcher.ask(4)) == 4  # nothing to learn from: the first feasible child


def test_screened_evolution_beats_plain_evolution_on_a_noisy_fitness() -> None:
    def best(screen: int, seed: int) -> float:
        searcher = make_searcher("evolution", LM, FIT.feasible, seed, population=16, sample_size=4, screen=screen,
                                 seeded=0.0)  # seeding is tested elsewhere, and costs seconds
        for _ in range(10):
            archs = searcher.ask(6)
            searcher.tell(archs, [FIT.loss(a) + noise(a, 0.1) for a in archs], FIT.latency(archs))
        told = sorted(searcher.told, key=lambda r: r.loss)[:5]
        return min(FIT.loss(r.arch) for r in told)  # the true loss of what the noisy search holds best

    screened = statistics.mean(best(8, s) for s in range(6))
    plain = statistics.mean(best(1, s) for s in range(6))
    assert screened < plain, (screened, plain)
