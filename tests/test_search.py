"""Search: the searcher contract for every registered strategy, the journal, resume, budgets.

Fitness is synthetic and cheap: loss = -log(parameters) + a small term per attention type, latency
= FLOPs / 1e10 s, and the budget the median latency of random archs, so about half the space is
feasible and the best archs sit on the budget's edge, as in a real search.
"""
from __future__ import annotations

import math
import re
import statistics
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import FixedTrial, TrialState

from nas.search import (REUSED, STRATEGIES, InfeasibleBudget, format_duration, make_searcher, parse_duration,
                        run_search)
from nas.search import study as rec
from nas.search.optuna_space import arch_params, suggest_arch
from space import Arch, UserError, analytic_cost, load_space

SPACES = {name: load_space(name) for name in ("lm-shakespeare", "folio-translation")}
LM = SPACES["lm-shakespeare"]
# tiny versions of each strategy, so a few dozen evaluations go through several generations
SMALL = {"random": {}, "evolution": {"population": 8, "sample_size": 3},
         "hat": {"population": 8, "parents": 3, "mutations": 3, "crossovers": 3},
         "tpe": {"n_startup_trials": 5}, "nsga2": {"population_size": 6}}
OPTUNA_DRIVEN = {name for name, cls in STRATEGIES.items() if cls.records_own_trials}
# per layer; enough that the best archs are a needle (all-linear, at the budget's edge) random rarely hits
TYPE_TERM = {"softmax": 0.1, "window": 0.05, "linear": 0.0, "linformer": 0.05, "fastformer": 0.02}


class Synthetic:
    def __init__(self, space) -> None:
        self.space, self._cost = space, {}
        self.budget = statistics.median(self.latency([space.sample(s) for s in range(200)]))
        self.evaluated: list[str] = []

    def cost(self, arch: Arch):
        if arch.id not in self._cost:
            self._cost[arch.id] = analytic_cost(arch, self.space.workload)
        return self._cost[arch.id]

    def loss(self, arch: Arch) -> float:
        term = sum(TYPE_TERM[layer.attn] for _, stack in arch.stacks for layer in stack.layers)
        return -math.log(self.cost(arch).params) + term

    def evaluate(self, archs: list[Arch]) -> list[float]:
        self.evaluated += [a.id for a in archs]
        return [self.loss(a) for a in archs]

    def latency(self, archs: list[Arch]) -> list[float]:
        return [self.cost(a).flops / 1e10 for a in archs]

    def feasible(self, arch: Arch) -> bool:
        return self.latency([arch])[0] <= self.budget


FIT = {name: Synthetic(space) for name, space in SPACES.items()}


def search(strategy: str, run_dir: Path, iterations: int = 20, seed: int = 0, evaluate=None, **kw):
    fit = FIT["lm-shakespeare"]
    return run_search(LM, strategy, evaluate=evaluate or fit.evaluate, latency=fit.latency, budget_s=fit.budget,
                      iterations=iterations, batch=kw.pop("batch", 4), run_dir=run_dir, seed=seed,
                      options=SMALL[strategy], **kw)


def journal(run_dir: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run_dir / "journal.log")))
    return optuna.load_study(study_name="search", storage=storage)


@pytest.fixture(params=list(STRATEGIES))
def strategy(request) -> str:
    return request.param


class TestSearcherContract:
    """Every registered strategy, through the interface alone."""

    @pytest.mark.parametrize("space_name", sorted(SPACES))
    def test_proposals_are_new_feasible_members(self, strategy: str, space_name: str) -> None:
        space, fit = SPACES[space_name], FIT[space_name]
        searcher = make_searcher(strategy, space, fit.feasible, seed=1, **SMALL[strategy])
        told: set[str] = set()
        while len(told) < 24:
            archs = searcher.ask(5)
            assert 1 <= len(archs) <= 5
            ids = [a.id for a in archs]
            assert len(set(ids)) == len(ids) and not told & set(ids)
            assert all(space.contains(a) and fit.feasible(a) for a in archs)
            searcher.tell(archs, [fit.loss(a) for a in archs], fit.latency(archs))
            told |= set(ids)

    def test_tell_accepts_failures_and_latencies(self, strategy: str) -> None:
        fit = FIT["lm-shakespeare"]
        searcher = make_searcher(strategy, LM, fit.feasible, seed=2, **SMALL[strategy])
        for _ in range(4):
            archs = searcher.ask(3)
            losses = [math.inf, math.nan, *[fit.loss(a) for a in archs[2:]]][:len(archs)]
            searcher.tell(archs, losses, fit.latency(archs))
        with pytest.raises(ValueError):
            searcher.tell(archs[:1], [1.0], fit.latency(archs[:1]))  # told twice

    def test_same_seed_same_trials(self, strategy: str, tmp_path: Path) -> None:
        a = search(strategy, tmp_path / "a", iterations=16)
        b = search(strategy, tmp_path / "b", iterations=16)
        c = search(strategy, tmp_path / "c", iterations=16, seed=7)
        assert [t["arch_id"] for t in a.trials] == [t["arch_id"] for t in b.trials]
        assert [t["loss"] for t in a.trials] == [t["loss"] for t in b.trials]
        assert [t["arch_id"] for t in a.trials] != [t["arch_id"] for t in c.trials]

    def test_infeasible_budget_fails_fast_naming_the_smallest(self, strategy: str, tmp_path: Path) -> None:
        fit = FIT["lm-shakespeare"]
        smallest = fit.latency([LM.smallest()])[0]
        start = time.perf_counter()
        with pytest.raises(InfeasibleBudget) as e:
            run_search(LM, strategy, evaluate=fit.evaluate, latency=fit.latency, budget_s=smallest / 10,
                       iterations=10, batch=2, run_dir=tmp_path / "run", seed=0, options=SMALL[strategy],
                       hardware="xeon")
        assert time.perf_counter() - start < 5
        msg = str(e.value)
        assert "\n" not in msg and "lm-shakespeare" in msg and "on xeon" in msg and "--latency-budget" in msg
        shown = re.search(r"smallest predicted latency is ([\d.]+ \w+)", msg).group(1)
        assert parse_duration(shown.replace(" ", "")) <= smallest * 1.001
        assert not (tmp_path / "run").exists()  # nothing written for a search that cannot start

    def test_a_budget_that_admits_few_archs_ends_the_search_early(self, strategy: str, tmp_path: Path) -> None:
        """When no new arch fits the budget any more, the search stops with what it has (and says
        so) rather than failing: the archs of one layer of 16 with 2 heads fit (kv heads 1 or 2, FFN
        ratio 1 or 2, every causal attention option)."""
        from tests.conftest import ATTN, CAUSAL, tiny_space
        space = tiny_space("decoder")
        fits = 2 * 2 * sum(len(next(iter(ATTN[t].values()))) if ATTN[t] else 1 for t in CAUSAL)
        small = lambda a: a.decoder.depth == 1 and a.decoder.embed == 16 and a.decoder.layers[0].heads == 2  # noqa: E731
        res = run_search(space, strategy, evaluate=lambda archs: [float(len(a.id)) for a in archs],
                         latency=lambda archs: [0.1 if small(a) else 1.0 for a in archs], budget_s=0.5,
                         iterations=60, batch=4, run_dir=tmp_path / "run", seed=0,
                         options={**SMALL[strategy], "max_attempts": 40},
                         **({"fidelity": None}))
        assert 0 < len(res.trials) <= fits and all(small(Arch.from_json(t["arch"])) for t in res.trials)
        assert res.stopped and "stopped after" in res.stopped and res.best is not None

    def test_searcher_caps_its_attempts(self, strategy: str) -> None:
        searcher = make_searcher(strategy, LM, lambda arch: False, seed=0, max_attempts=5, **SMALL[strategy])
        start = time.perf_counter()
        with pytest.raises(InfeasibleBudget, match="raise --latency-budget"):
            searcher.ask(2)
        assert time.perf_counter() - start < 5

    def test_resume_after_kill(self, strategy: str, tmp_path: Path) -> None:
        class Killed(Exception):
            pass

        fit, count = FIT["lm-shakespeare"], [0]

        def dies_at_13(archs: list[Arch]) -> list[float]:
            if count[0] < 13 <= count[0] + len(archs):
                raise Killed
            count[0] += len(archs)
            return fit.evaluate(archs)

        run_dir = tmp_path / "run"
        with pytest.raises(Killed):
            search(strategy, run_dir, evaluate=dies_at_13)
        assert len(rec.evaluated(journal(run_dir))) == 12
        assert not journal(run_dir).get_trials(states=(TrialState.RUNNING,))  # the batch in flight: FAIL
        fresh: list[str] = []
        resumed = search(strategy, run_dir, evaluate=lambda archs: fresh.extend(a.id for a in archs)
                         or fit.evaluate(archs))
        trials = rec.evaluated(journal(run_dir))
        assert len(trials) == 20 and len(resumed.trials) == 20 and len(fresh) == 8
        ids = [t.user_attrs["arch_id"] for t in trials]
        assert len(set(ids)) == 20
        if strategy not in OPTUNA_DRIVEN:
            assert ids == [t["arch_id"] for t in search(strategy, tmp_path / "uninterrupted").trials]

    def test_journal_records_genes_and_attributes(self, strategy: str, tmp_path: Path) -> None:
        result = search(strategy, tmp_path / "run", iterations=10)
        study = journal(tmp_path / "run")
        assert len(study.directions) == len(STRATEGIES[strategy].directions)
        assert study.user_attrs["strategy"] == strategy and study.user_attrs["seed"] == 0
        trials = rec.evaluated(study)
        assert [t.number for t in trials] == [t["number"] for t in result.trials]
        for t in trials:
            arch = Arch.from_json(t.user_attrs["arch"])
            assert arch.id == t.user_attrs["arch_id"] and t.user_attrs["strategy"] == strategy
            assert suggest_arch(FixedTrial(t.params), LM) == arch  # the genes are the arch
            assert t.user_attrs["latency_s"] == FIT["lm-shakespeare"].latency([arch])[0] <= FIT["lm-shakespeare"].budget
            if len(t.values) == 2:
                assert t.values[1] == t.user_attrs["latency_s"]
        assert result.best["loss"] == min(t.values[0] for t in trials)
        assert result.best_arch.id == result.best["arch_id"]
        assert list(result.frame().columns) == ["number", "arch_id", "loss", "batches", "tokens", "latency_s",
                                                "latency_bound_s", "memory_bytes", "strategy", "search_loss", "arch"]
        assert all(t["memory_bytes"] is None for t in result.trials)  # no memory model given
        assert all(t["latency_bound_s"] == t["latency_s"] for t in result.trials)  # no bound given: the prediction
        assert all(Arch.from_json(t["arch"]).id == t["arch_id"] for t in result.trials)


# ---- the driver ---------------------------------------------------------------------------------

class TestReuse:
    """Archs scored by earlier searches (nas.search.scores) join the answer: every strategy."""

    def test_known_archs_join_the_answer_without_steering_the_search(self, strategy: str, tmp_path: Path) -> None:
        fit = FIT["lm-shakespeare"]
        first = search(strategy, tmp_path / "first", iterations=16)
        known = [(Arch.from_json(t["arch"]), t["loss"]) for t in first.trials]
        over = next(a for a in (LM.sample(s) for s in range(100, 400)) if not fit.feasible(a))
        known.append((over, -100.0))  # over the budget: never reused, however good
        plain = search(strategy, tmp_path / "plain", iterations=16, seed=3)
        second = search(strategy, tmp_path / "second", iterations=16, seed=3, known=known, known_limit=6)
        own = [t for t in second.trials if t["strategy"] != REUSED]
        reused = [t for t in second.trials if t["strategy"] == REUSED]
        assert [t["arch_id"] for t in own] == [t["arch_id"] for t in plain.trials]  # the same search
        ids = {t["arch_id"] for t in own}
        expected = sorted((t for t in first.trials if t["arch_id"] not in ids), key=lambda t: t["loss"])[:6]
        assert sorted(t["arch_id"] for t in reused) == sorted(t["arch_id"] for t in expected)
        assert over.id not in {t["arch_id"] for t in second.trials}
        assert min(t["number"] for t in reused) > max(t["number"] for t in own)  # recorded after it
        assert second.best["loss"] == min(plain.best["loss"], min(t["loss"] for t in first.trials))

    def test_larger_budget_never_answers_worse_after_a_smaller_one(self, strategy: str, tmp_path: Path) -> None:
        from nas.search.scores import ScoreBook
        fit = FIT["lm-shakespeare"]
        book = ScoreBook(tmp_path / "scores.jsonl")
        best = []
        for k, budget in enumerate(fit.budget * f for f in (0.6, 0.8, 1.0, 1.3)):
            res = run_search(LM, strategy, evaluate=book.wrap(fit.evaluate), latency=fit.latency, budget_s=budget,
                             iterations=12, batch=4, run_dir=tmp_path / f"b{k}", seed=k, options=SMALL[strategy],
                             known=book.items())
            best.append(res.best["loss"])
        assert best == sorted(best, reverse=True)

    def test_a_resumed_search_reuses_as_an_uninterrupted_one(self, strategy: str, tmp_path: Path) -> None:
        fit, count = FIT["lm-shakespeare"], [0]
        known = [(Arch.from_json(t["arch"]), t["loss"]) for t in search(strategy, tmp_path / "first").trials]

        def dies_at_9(archs: list[Arch]) -> list[float]:
            if count[0] < 9 <= count[0] + len(archs):
                raise RuntimeError("killed")
            count[0] += len(archs)
            return fit.evaluate(archs)

        with pytest.raises(RuntimeError):
            search(strategy, tmp_path / "run", seed=5, known=known, known_limit=5, evaluate=dies_at_9)
        resumed = search(strategy, tmp_path / "run", seed=5, known=known, known_limit=5)
        whole = search(strategy, tmp_path / "whole", seed=5, known=known, known_limit=5)
        assert sum(t["strategy"] != REUSED for t in resumed.trials) == 20
        assert ({t["arch_id"] for t in resumed.trials if t["strategy"] == REUSED}
                == {t["arch_id"] for t in whole.trials if t["strategy"] == REUSED} or strategy in OPTUNA_DRIVEN)
        if strategy not in OPTUNA_DRIVEN:
            assert [t["arch_id"] for t in resumed.trials] == [t["arch_id"] for t in whole.trials]
        again = search(strategy, tmp_path / "run", seed=5, known=known, known_limit=5)  # finished: nothing new
        assert [t["arch_id"] for t in again.trials] == [t["arch_id"] for t in resumed.trials]

    def test_a_finished_run_grows_as_if_never_reused(self, strategy: str, tmp_path: Path) -> None:
        known = [(Arch.from_json(t["arch"]), t["loss"]) for t in search(strategy, tmp_path / "first").trials]
        search(strategy, tmp_path / "run", iterations=12, seed=4, known=known, known_limit=5)
        grown = search(strategy, tmp_path / "run", iterations=24, seed=4, known=known, known_limit=5)
        alone = search(strategy, tmp_path / "alone", iterations=24, seed=4)
        own = [t["arch_id"] for t in grown.trials if t["strategy"] != REUSED]
        assert len(own) == 24 and len(grown.trials) - len(own) <= 5
        if strategy not in OPTUNA_DRIVEN:  # an Optuna sampler's resume is not a replay
            assert own == [t["arch_id"] for t in alone.trials]
        fresh = search(strategy, tmp_path / "run", iterations=24, seed=4)  # --no-reuse: left out
        assert not [t for t in fresh.trials if t["strategy"] == REUSED]


def test_resume_refuses_other_settings(tmp_path: Path) -> None:
    search("random", tmp_path, iterations=4)
    with pytest.raises(UserError) as e:
        search("random", tmp_path, iterations=8, seed=1)
    assert "\n" not in str(e.value) and "seed: recorded 0, now 1" in str(e.value)
    with pytest.raises(UserError, match="strategy: recorded random, now evolution"):
        search("evolution", tmp_path, iterations=8)
    assert len(search("random", tmp_path, iterations=8).trials) == 8  # the same settings resume


@pytest.mark.parametrize("strategy", ["random", "hat"])
def test_sequence_does_not_depend_on_batch_size(strategy: str, tmp_path: Path) -> None:
    a = search(strategy, tmp_path / "a", iterations=18, batch=5)
    b = search(strategy, tmp_path / "b", iterations=18, batch=3)
    assert [t["arch_id"] for t in a.trials] == [t["arch_id"] for t in b.trials]


def test_unknown_strategy_and_options() -> None:
    with pytest.raises(UserError, match="unknown search strategy 'annealing'; choose one of: random, evolution"):
        make_searcher("annealing", LM, bool, 0)
    with pytest.raises(UserError, match="unknown option 'pop' for strategy 'evolution'; allowed: .*population"):
        make_searcher("evolution", LM, bool, 0, pop=10)
    with pytest.raises(UserError, match="population=0 must be a positive integer"):
        make_searcher("hat", LM, bool, 0, population=0)
    with pytest.raises(UserError, match="sample_size=30 exceeds population=10"):
        make_searcher("evolution", LM, bool, 0, population=10, sample_size=30)
    with pytest.raises(UserError, match="aging='no' must be true or false"):
        make_searcher("evolution", LM, bool, 0, aging="no")
    with pytest.raises(UserError, match=r"mutation_prob=1.5 must be a probability in \[0, 1\]"):
        make_searcher("hat", LM, bool, 0, mutation_prob=1.5)


def test_failed_evaluations_are_recorded_and_never_best(tmp_path: Path) -> None:
    fit, calls = FIT["lm-shakespeare"], []

    def flaky(archs: list[Arch]) -> list[float]:  # every other arch fails (NaN: a diverged evaluation)
        return [math.nan if i % 2 else loss for i, loss in enumerate(fit.evaluate(archs))]

    result = search("evolution", tmp_path, iterations=12, evaluate=flaky,
                    progress=lambda done, info: calls.append((done, info)))
    assert sum(math.isinf(t["loss"]) for t in result.trials) == 6
    assert math.isfinite(result.best["loss"]) and result.best["loss"] == min(t["loss"] for t in result.trials)
    assert [c[0] for c in calls] == [4, 8, 12] and calls[-1][1] == result.best["loss"]


def test_hat_generations() -> None:
    fit = FIT["lm-shakespeare"]
    hat = make_searcher("hat", LM, fit.feasible, 0, **SMALL["hat"])
    sizes, gen0 = [], []
    for _ in range(5):
        archs = hat.ask(5)
        sizes.append(len(archs))
        gen0 += archs if len(gen0) < 8 else []
        hat.tell(archs, [fit.loss(a) for a in archs], fit.latency(archs))
    assert sizes == [5, 3, 5, 1, 5]  # 8 random, then 6 children a generation; a batch never straddles two
    parents = sorted(gen0, key=fit.loss)[:3]
    assert all(p.id in {r.arch.id for r in hat.told} for p in parents)


def test_evolution_beats_random() -> None:
    fit = FIT["lm-shakespeare"]

    def best(strategy: str, seed: int) -> float:
        searcher = make_searcher(strategy, LM, fit.feasible, seed, **({"population": 16, "sample_size": 4}
                                                                         if strategy == "evolution" else {}))
        for _ in range(12):
            archs = searcher.ask(5)
            searcher.tell(archs, [fit.loss(a) for a in archs], fit.latency(archs))
        return min(r.loss for r in searcher.told)

    evo = statistics.mean(best("evolution", s) for s in range(3))
    rnd = statistics.mean(best("random", s) for s in range(3))
    assert evo <= rnd + 1e-9


# ---- the Optuna adapter -------------------------------------------------------------------------

@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_params_round_trip(space_name: str) -> None:
    space = SPACES[space_name]
    for seed in range(40):
        arch = space.sample(seed)
        params, dists = arch_params(space, arch)
        assert set(params) == set(dists) and all(dists[k]._contains(dists[k].to_internal_repr(v))
                                                 for k, v in params.items())
        assert suggest_arch(FixedTrial(params), space) == arch


def test_params_are_repaired_into_the_space() -> None:
    space = SPACES["folio-translation"]
    params, _ = arch_params(space, space.smallest())
    assert space.encoder.depth[0] == 2
    params.update({"encoder.0.heads": 2, "encoder.0.kv_heads": 8, "decoder.0.cross_layers": 3})
    arch = suggest_arch(FixedTrial(params), space)
    assert arch.encoder.layers[0].kv_heads == 2  # nearest divisor of heads=2
    assert arch.decoder.layers[0].cross_layers == 2  # the encoder has 2 layers
    assert space.contains(arch)


# ---- budgets ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [("20ms", 0.02), ("0.02s", 0.02), ("1.5s", 1.5), ("250us", 250e-6),
                                           ("250µs", 250e-6), (" 20 ms ", 0.02), ("1e-3s", 1e-3), ("5MS", 5e-3)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, message", [("20", "has no unit: did you mean 20ms or 20s"),
                                           ("-5ms", "must be positive"), ("0s", "must be positive"),
                                           ("fast", "not a duration"), ("20 minutes", "unknown unit 'minutes'"),
                                           ("", "not a duration")])
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as e:
        parse_duration(text)
    assert "\n" not in str(e.value) and "20ms" in str(e.value)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (1.5, 0.0123, 0.005, 250e-6, 3e-9)] == ["1.5 s", "12.3 ms", "5 ms",
                                                                              "250 us", "3 ns"]


def test_budget_admits_its_bound_and_keeps_the_users_text() -> None:
    from nas.search import Budget
    b = Budget.of("20ms")
    assert b.seconds == pytest.approx(0.02) and str(b) == "20ms" and Budget.of(b) is b
    assert b.admits(0.02) and b.admits(0.019) and not b.admits(0.0201)
    assert b.used(0.015) == pytest.approx(0.75)
    assert str(Budget.of(0.5)) == "0.5s" and Budget.of(2).seconds == 2.0
    for bad in (0, -1.0, float("nan"), float("inf"), True, "20"):
        with pytest.raises(UserError):
            Budget.of(bad)


@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_each_strategy_says_how_a_population_maps_onto_its_options(strategy: str) -> None:
    from nas.search import resolve_options
    from nas.search.base import population_options, strategy_class
    if strategy_class(strategy).population_options(8) is None:
        with pytest.raises(UserError, match=f"--population does not apply to --strategy {strategy}"):
            population_options(strategy, 8)
        return
    for population in (6, 8, 37):
        opts = resolve_options(strategy, population_options(strategy, population))
        assert population in vars(opts).values()
    with pytest.raises(UserError, match="--population=1 must be an integer of at least 2"):
        population_options(strategy, 1)


@pytest.mark.slow
def test_the_goal_benchmark_runs_on_a_tiny_space(tiny_trained: Path, tmp_path: Path) -> None:
    """bench/search.py --parts goal end to end on the tiny space: the uniform baseline, the searches
    and the reference per budget, the summary against the baseline, the plot; a second run resumes
    and scores nothing again."""
    import json
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(root / "bench" / "search.py"), "--parts", "goal", "--space", str(tiny_trained / "tiny.yaml"),
           "--supernet", str(tiny_trained / "sn"), "--goal", "xeon-2vcpu:1s,2s", "--goal-strategies", "random",
           "evolution", "--goal-seeds", "0", "--goal-iterations", "12", "--reference-mult", "2", "--threads", "1",
           "--out", str(tmp_path / "out")]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    goal = json.loads((tmp_path / "out" / "goal.json").read_text())
    for cell in ("xeon-2vcpu/1s", "xeon-2vcpu/2s"):
        c = goal[cell]
        assert c["uniform"]["val"] > 0 and set(c["runs"]) == {"random/s0", "evolution/s0", "evolution/s0/x24"}
        assert all(r["budget_used"] <= 1 and r["batches"] == goal["fidelity"]["final_batches"] for r in c["runs"].values())
        assert "not_worse" in c["summary"]["evolution"] and "gap_to_reference" in c["summary"]["evolution"]
    assert (tmp_path / "out" / "goal.png").is_file()
    book = next((tmp_path / "out").glob("goal_scores-*.jsonl"))
    lines = book.read_text().count("\n")
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=root, timeout=900)
    assert again.returncode == 0 and book.read_text().count("\n") == lines  # resumed: nothing scored twice
