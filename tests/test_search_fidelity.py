"""The search reaches the budget's corners and decides on fidelity: whole-stack moves stay in the
space, seeded populations start at the budget, hurdles and the final re-score pick the answer."""
from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from nas.search import STRATEGIES, Fidelity, make_searcher, run_search
from nas.search.fidelity import final_set, hurdle_value, score_batch, structure
from nas.search.seeding import budget_seeds
from space import Arch, UserError, analytic_cost, load_space
from space.moves import STACK_MOVES, grow, growth_steps, stack_move, uniform_archs, uniform_count
from tests.conftest import tiny_space

SPACES = {name: load_space(name) for name in ("lm-shakespeare", "folio-translation")}
LM = SPACES["lm-shakespeare"]
SMALL = {"random": {}, "evolution": {"population": 8, "sample_size": 3},
         "hat": {"population": 8, "parents": 3, "mutations": 3, "crossovers": 3},
         "tpe": {"n_startup_trials": 5}, "nsga2": {"population_size": 6}}


def params(arch: Arch) -> int:
    return analytic_cost(arch).params


def is_uniform(arch: Arch) -> bool:
    return all(len({layer for layer in stack.layers}) == 1 for _, stack in arch.stacks)


@pytest.mark.parametrize("space", [*SPACES.values(), tiny_space("decoder"), tiny_space("encoder"),
                                   tiny_space("encoder-decoder")], ids=lambda s: s.name)
def test_stack_moves_stay_in_the_space(space) -> None:
    rng = random.Random(0)
    for k in range(40):
        arch = space.sample(rng)
        for move in STACK_MOVES:
            child = stack_move(space, arch, rng, move)
            assert space.contains(child), (move, space.check(child))
        assert space.contains(stack_move(space, arch, rng))
    with pytest.raises(ValueError, match="unknown stack move"):
        stack_move(space, space.sample(rng), rng, "sideways")


def test_stack_moves_move_the_whole_stack() -> None:
    rng = random.Random(1)
    arch = LM.largest().with_precision("fp32")
    small = stack_move(LM, arch, rng, "ffn")  # at the top: every FFN one step down
    assert all(la.ffn < lb.ffn for la, lb in zip(small.decoder.layers, arch.decoder.layers))
    assert stack_move(LM, arch, rng, "depth").decoder.depth == arch.decoder.depth - 1
    uni = stack_move(LM, LM.sample(rng), rng, "uniform")
    assert is_uniform(uni)
    assert stack_move(LM, arch, rng, "precision").precision != "fp32"


def test_uniform_archs_are_every_uniform_arch() -> None:
    space = tiny_space("decoder")
    archs = uniform_archs(space)
    assert len(archs) == uniform_count(space) == len({a.id for a in archs})
    assert all(space.contains(a) and is_uniform(a) for a in archs)
    assert space.largest().id in {a.id for a in archs} and space.smallest().id in {a.id for a in archs}
    # a space with more uniform archs than the limit: that many distinct ones, drawn
    drawn = uniform_archs(SPACES["folio-translation"], limit=100, draw=50)
    assert len({a.id for a in drawn}) == 50 and all(SPACES["folio-translation"].contains(a) for a in drawn)


def test_growth_reaches_the_budget() -> None:
    budget = params(LM.largest()) * 0.6

    def fits(archs):
        return [params(a) <= budget for a in archs]
    grown = grow(LM, LM.smallest(), fits, rng=3)
    assert params(grown) <= budget
    assert not any(fits(growth_steps(LM, grown)))  # no step up fits any more
    assert params(grown) > 0.8 * budget
    assert all(params(a) > params(LM.smallest()) for a in growth_steps(LM, LM.smallest()))


def test_budget_seeds_are_feasible_large_and_deterministic() -> None:
    budget = params(LM.largest()) * 0.5

    def fits(archs):
        return [params(a) <= budget for a in archs]
    seeds = budget_seeds(LM, fits, 20, seed=0)
    assert len(seeds) == 20 == len({a.id for a in seeds}) and all(fits(seeds))
    assert [a.id for a in seeds] == [a.id for a in budget_seeds(LM, fits, 20, seed=0)]
    best_uniform = max((a for a in uniform_archs(LM) if fits([a])[0]), key=params)
    assert params(seeds[0]) == params(best_uniform)
    samples = [LM.sample(s) for s in range(200)]
    feasible = [params(a) for a in samples if fits([a])[0]]
    assert sum(params(a) for a in seeds) / len(seeds) > sum(feasible) / len(feasible)  # nearer the budget


@pytest.mark.parametrize("strategy", ["evolution", "hat", "nsga2"])
def test_seeded_search_returns_the_known_best_uniform_arch(strategy: str, tmp_path: Path) -> None:
    """On a tiny space, the best arch is the largest uniform arch within the budget (plus noise
    that a mixed arch cannot beat): every population strategy answers it. One attention type: types
    of equal parameter count would tie, and the target among them be an arbitrary id."""
    space = tiny_space("decoder").with_attention(["softmax"])
    budget = sorted(params(a) for a in uniform_archs(space))[-8]
    target = max((a for a in uniform_archs(space) if params(a) <= budget), key=lambda a: (params(a), a.id))

    def loss(arch: Arch) -> float:
        return (-math.log(params(arch)) + (0.0 if arch.id == target.id else 0.05)
                + 0.01 * (random.Random(arch.id).random()))

    res = run_search(space, strategy, evaluate=lambda archs: [loss(a) for a in archs],
                     latency=lambda archs: [params(a) * 1e-9 for a in archs], budget_s=budget * 1e-9,
                     iterations=12, batch=4, run_dir=tmp_path / "run", seed=0, options=SMALL[strategy])
    assert res.best_arch.id == target.id


def test_random_search_stays_plain_random(tmp_path: Path) -> None:
    assert not hasattr(STRATEGIES["random"].Options, "seeded")
    searcher = make_searcher("random", LM, lambda a: True, seed=0)
    assert [a.id for a in searcher.ask(5)] == [LM.sample(searcher._rng("draw", k)).id for k in range(5)]


# ---- fidelity ------------------------------------------------------------------------------------

class Noisy:
    """loss on n batches = true loss + noise that shrinks as 1/sqrt(n): what a prefix of more
    validation batches gives; every call is recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def true(self, arch: Arch) -> float:
        return -math.log(params(arch))

    def __call__(self, archs: list[Arch], batches: int) -> list[float]:
        self.calls += [(a.id, batches) for a in archs]
        return [self.true(a) + random.Random(f"{a.id}/{batches}").gauss(0, 0.3) / math.sqrt(batches) for a in archs]


def test_fidelity_checks_its_stages() -> None:
    with pytest.raises(UserError, match="must grow by stage"):
        Fidelity(batches=8, hurdle_batches=4)
    with pytest.raises(UserError, match="hurdle"):
        Fidelity(hurdle=0)
    assert not Fidelity.single(4).multi and Fidelity().multi
    assert hurdle_value([3.0, 1.0, 2.0, 4.0, math.inf], 0.5) == 2.0 and hurdle_value([], 0.5) == math.inf


def test_hurdle_promotes_the_contenders_only() -> None:
    scorer, fid = Noisy(), Fidelity(batches=2, hurdle_batches=8, hurdle=0.25, final_batches=32)
    history: list[float] = []
    archs = [LM.sample(s) for s in range(16)]
    losses, used, cheap = score_batch(archs, scorer, fid, history)
    assert history == cheap and len(cheap) == 16
    bar = sorted(cheap)[3]
    for arch, loss, n, c in zip(archs, losses, used, cheap):
        assert (n == 8) == (c <= bar)
        assert loss == (c if n == 2 else scorer([arch], 8)[0])


@pytest.mark.parametrize("strategy", ["evolution", "tpe"])
def test_final_top_is_rescored_on_the_large_set_and_decides(strategy: str, tmp_path: Path) -> None:
    scorer, fid = Noisy(), Fidelity(batches=1, hurdle_batches=4, hurdle=0.25, final_batches=64, final_top=5)
    budget = params(LM.largest()) * 0.4e-9
    res = run_search(LM, strategy, evaluate=scorer, latency=lambda archs: [params(a) * 1e-9 for a in archs],
                     budget_s=budget, iterations=40, batch=8, run_dir=tmp_path / "run", seed=0,
                     options=SMALL[strategy], fidelity=fid, tokens=lambda n: 100 * n)
    finals = [t for t in res.trials if t["batches"] == 64]
    by_search = sorted((t for t in res.trials if t["latency_bound_s"] <= budget),
                       key=lambda t: (t["search_loss"], t["number"]))
    chosen = final_set([Arch.from_json(t["arch"]) for t in by_search], 5)  # the best of each structure first
    assert {t["arch_id"] for t in finals} == {a.id for a in chosen}
    assert finals and by_search[0]["arch_id"] in {t["arch_id"] for t in finals}  # the best held is always in
    assert sorted(i for i, n in scorer.calls if n == 64) == sorted(t["arch_id"] for t in finals)
    assert res.best["batches"] == 64 and res.best["tokens"] == 6400
    assert res.best["loss"] == min(t["loss"] for t in finals)
    assert all(t["loss"] == scorer([Arch.from_json(t["arch"])], 64)[0] for t in finals)
    assert {t["batches"] for t in res.trials} <= {1, 4, 64}
    # a resumed, finished run does not score anything again
    again = Noisy()
    rerun = run_search(LM, strategy, evaluate=again, latency=lambda archs: [params(a) * 1e-9 for a in archs],
                       budget_s=budget, iterations=40, batch=8, run_dir=tmp_path / "run", seed=0,
                       options=SMALL[strategy], fidelity=fid, tokens=lambda n: 100 * n)
    assert not again.calls and rerun.best["arch_id"] == res.best["arch_id"]


def test_final_set_spreads_over_structures_before_filling_by_loss() -> None:
    rng = random.Random(3)
    base = LM.largest().with_precision("fp32")
    deep = [stack_move(LM, base, rng, "ffn") for _ in range(1)] + [base]
    shallow = stack_move(LM, base, rng, "depth")
    int8 = base.with_precision("int8")
    # best first: two of one structure, then two others
    ranked = [base, deep[0], shallow, int8]
    assert structure(base) == structure(deep[0]) != structure(shallow) != structure(int8)
    assert [a.id for a in final_set(ranked, 3)] == [base.id, shallow.id, int8.id]  # neighbours wait
    assert [a.id for a in final_set(ranked, 4)] == [a.id for a in ranked]  # then filled, best first
    assert [a.id for a in final_set(ranked, 1)] == [base.id]
    assert final_set([], 5) == []


def test_eval_context_scores_windows_of_that_length(tiny_trained, tmp_path) -> None:
    """--eval-context: a language model's losses on windows of N tokens, the same tokens per batch;
    a search records it and keeps its scores apart; beyond the space's context it is refused."""
    from nas import api
    from supernet.checkpoint import read_record
    from supernet.tasks import spread_batches, supernet_task_data
    record = read_record(tiny_trained / "sn")  # trained on windows of 32, 4 per batch
    x, y = supernet_task_data(record, 2, context=16).val[0]
    assert y.shape == (8, 16)  # twice the windows, half as long
    assert spread_batches(record, 3, context=8)[0][1].shape == (16, 8)
    space, sn = tiny_trained / "tiny.yaml", tiny_trained / "sn"
    arch = load_space(space).largest()
    short = api.evaluate(sn, arch, batches=2, context=8, progress=False).scores[0].loss
    full = api.evaluate(sn, arch, batches=2, progress=False).scores[0].loss
    assert short != full
    run = api.search("a100", "2s", space=space, supernet=sn, iterations=4, eval_batches=1, eval_context=16,
                     out=tmp_path / "run", options={"population": 4, "sample_size": 2}, progress=False)
    assert run.best is not None and run.record.fidelity["context"] == 16
    from nas.api._search import score_book
    plan = api.plan_search("a100", "2s", space=space, supernet=sn, eval_batches=1, out=tmp_path / "run3")
    assert score_book(plan, sn).path != score_book(api.plan_search(
        "a100", "2s", space=space, supernet=sn, eval_batches=1, eval_context=16, out=tmp_path / "run4"), sn).path
    with pytest.raises(UserError, match="context=0 must be"):
        api.evaluate(sn, arch, batches=1, context=0, progress=False)
    with pytest.raises(UserError, match="positions beyond 32 were never trained"):
        api.evaluate(sn, arch, batches=1, context=48, progress=False)
    with pytest.raises(UserError, match="--eval-context 65 exceeds"):
        api.plan_search("a100", "2s", space=space, supernet=sn, eval_context=65, out=tmp_path / "r2")


def test_attention_restricts_the_search_to_those_types(tiny_trained, tmp_path) -> None:
    """--attention linear: every trial (and so the answer) uses linear attention on every layer, with
    the supernet of the whole space; a type the space lacks is refused in one line."""
    from nas import api
    space, sn = tiny_trained / "tiny.yaml", tiny_trained / "sn"
    run = api.search("a100", "2s", space=space, supernet=sn, iterations=6, eval_batches=1, attention="linear",
                     out=tmp_path / "run", options={"population": 4, "sample_size": 2}, progress=False,
                     reuse=False)
    archs = [Arch.from_json(t["arch"]) for t in run.trials]
    assert archs and all(layer.attn == "linear" for a in archs for layer in a.decoder.layers)
    with pytest.raises(UserError, match="attention fastformer: space 'tiny-lm' offers linear, softmax, window"):
        api.plan_search("a100", "2s", space=space, supernet=sn, attention="fastformer", out=tmp_path / "r2")
