"""The search stage of the API: the most accurate arch within a latency budget.

`plan_search` checks everything a search needs — budget, hardware, space, workload, strategy and
its options, Ray, the run folder, the supernet — and that the budget is reachable (the latency
predictor, put on today's scale by timing the reference arch when the measured device is this
machine), in a few seconds and before any training. `search` then trains the quick
supernet if there is none, searches, and writes the run folder.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from latency.model import DEFAULT_CONFIDENCE  # re-exported as nas.api.DEFAULT_CONFIDENCE
from nas.api._common import as_hardware, as_space, as_workload
from nas.api._latency import latency_function
from nas.api._supernet import SupernetChoice, choose_supernet, prepare_supernet, supernet_evaluator
from nas.api.progress import Progress, as_progress
from nas.search.budget import Budget, MemoryBudget
from space import Arch, SearchSpace, Workload
from space.errors import UserError
from space.options import check_int, flag

if TYPE_CHECKING:
    import torch

    from latency.hardware import Hardware
    from latency.model import LatencyModel
    from nas.search.fidelity import Fidelity
    from nas.search.report import SearchRun
    from nas.search.study import TrialRow

DEFAULT_ITERATIONS = 300


def _actor_evaluator(folder: str, batches: int, device: str, precision: str | None = None,
                     context: int | None = None) -> Any:
    """A Ray actor's scorer: the search's multi-fidelity one, on the actor's device."""
    return supernet_evaluator(folder, batches, device=device, precision=precision, spread=True, context=context)


# Fitness stages (nas.search.fidelity): batches of 16 windows of 128 tokens on the shipped supernet
DEFAULT_EVAL_BATCHES, DEFAULT_HURDLE_BATCHES, DEFAULT_FINAL_BATCHES, DEFAULT_FINAL_TOP = 2, 8, 64, 5


def default_run_dir(hw: str, budget: str, strategy: str, seed: int, runtime: str = "eager") -> Path:
    return Path("runs") / f"search-{hw}-{budget}{'' if runtime == 'eager' else '-' + runtime}-{strategy}-s{seed}"


@dataclass(frozen=True)
class SearchPlan:
    """A checked search request: nothing trained or evaluated yet."""

    hardware: "Hardware"
    space: SearchSpace
    workload: Workload
    budget: Budget  # seconds, and the text as the user wrote it
    strategy: str
    options: dict[str, Any]  # the strategy's options, defaults filled in
    iterations: int
    seed: int
    eval_batches: int
    workers: int
    ray_address: str | None
    run_dir: Path
    supernet: SupernetChoice
    latency: Callable[[list[Arch]], list[float]]
    latency_source: str
    recorded: int  # trials the run folder holds already (a resume)
    device: "torch.device | None" = None  # where the fitness (inherited-weight loss) is computed; None: on a Ray
    # cluster, whose actors resolve "auto" on their own machines
    precision: str = "fp32"
    confidence: float = 0.9  # an arch is within the budget when its latency's upper bound at this confidence is
    bound: Callable[[list[Arch]], list[float]] | None = None
    model: "LatencyModel | None" = None
    calibrate: bool = True  # time the reference arch now, on a measured device that is this machine
    full_space: SearchSpace | None = None  # the space before restricting it to the device's precisions
    reuse: bool = True  # never re-score an arch of earlier searches with this supernet; their best join the answer
    fidelity: "Fidelity | None" = None  # validation batches per stage (cheap, hurdle, final)
    memory_budget: MemoryBudget | None = None  # the second budget: peak inference memory for the workload

    def memory(self, archs: list[Arch]) -> list[int]:
        """Peak inference memory (bytes) of each arch for the plan's workload (space.memory)."""
        from space.memory import inference_memory
        return [inference_memory(a, self.workload).total for a in archs]

    @property
    def budget_s(self) -> float:
        return self.budget.seconds


@dataclass(frozen=True)
class SearchOutcome:
    run_dir: Path
    record: "SearchRun"
    trials: tuple["TrialRow", ...]  # every evaluated arch, in order told
    ranking: tuple["TrialRow", ...]  # the trials within the budget, best first
    notes: tuple[str, ...] = ()  # what the user should know about the latency figures

    @property
    def best(self) -> "TrialRow | None":
        return self.ranking[0] if self.ranking else None

    @property
    def best_arch(self) -> Arch | None:
        return Arch.from_json(self.ranking[0]["arch"]) if self.ranking else None


@dataclass(frozen=True)
class SearchRequest:
    """What a search is asked, each field once: `plan_search` checks it, `nas search` maps its
    options onto it. `budget`: a duration string ("20ms") or seconds; `device`/`precision`: where
    the fitness runs; `reuse`: never score an arch twice with the same supernet and settings
    (nas.search.scores), and let the best archs earlier searches scored within the budget compete
    for the answer. Fitness: every candidate on `eval_batches` validation batches, the contenders on
    `hurdle_batches` (default 8), the final `final_top` (the best of each structure first) on `final_batches` (default 64), the answer
    the best of those (nas.search.fidelity). `population`: in the strategy's own terms
    (Searcher.population_options); `options`: the strategy's options themselves."""

    hardware: "str | Path | Hardware"  # a profile's name, a path, or a profile
    budget: "str | float | Budget"  # "20ms", seconds, or a Budget
    space: str | Path | SearchSpace = "lm-shakespeare"
    supernet: str | Path | None = None
    strategy: str = "evolution"
    iterations: int = DEFAULT_ITERATIONS
    population: int | None = None
    options: dict[str, Any] | None = None
    seed: int = 0
    workload: str | Workload | None = None
    eval_batches: int = DEFAULT_EVAL_BATCHES
    hurdle_batches: int | None = None
    final_batches: int | None = None
    final_top: int = DEFAULT_FINAL_TOP
    workers: int = 0
    ray_address: str | None = None
    out: str | Path | None = None
    device: str = "auto"
    precision: str | None = None
    confidence: float = DEFAULT_CONFIDENCE
    calibrate: bool = True
    reuse: bool = True
    memory_budget: "str | int | MemoryBudget | None" = None  # "8MB", bytes: a second budget (space.memory)
    eval_context: int | None = None  # tokens per scored window (language models; default: the supernet's training length)
    attention: "tuple[str, ...] | str | None" = None  # only these attention types ("softmax", "window,linear"); None: all
    runtime: str | None = None  # eager | cuda-graphs: what the budget is for (None: the profile's default)


def as_request(hardware: Any, budget: Any = None, **fields: Any) -> SearchRequest:
    """A SearchRequest from one, from its fields, or from one with some fields replaced."""
    if isinstance(hardware, SearchRequest):
        return replace(hardware, **({"budget": budget} if budget is not None else {}), **fields)
    if budget is None:
        raise UserError("a search needs a latency budget, e.g. plan_search('a100', '20ms')")
    return SearchRequest(hardware, budget, **fields)


def plan_search(hardware: Any, budget: Any = None, **fields: Any) -> SearchPlan:
    """Checks a search request (a SearchRequest, or its fields); raises a UserError (one line) for the
    first thing wrong, in a few seconds and before anything is trained or scored."""
    r = as_request(hardware, budget, **fields)
    from nas.ray_adapter import check_address
    from nas.search import check_reachable, resolve_options, strategy_class
    from nas.search.base import population_options
    from nas.search.driver import run_settings
    from nas.search.study import check_resumable
    budget = Budget.of(r.budget)
    budget_s = budget.seconds
    for name, value, least in (("iterations", r.iterations, 1), ("eval_batches", r.eval_batches, 1), ("workers", r.workers, 0)):
        check_int(value, flag(name), least)
    strategy_class(r.strategy)
    from nas.search.fidelity import Fidelity
    fidelity = Fidelity(batches=r.eval_batches,
                        hurdle_batches=max(r.eval_batches, DEFAULT_HURDLE_BATCHES) if r.hurdle_batches is None else r.hurdle_batches,
                        final_batches=(max(r.eval_batches, r.hurdle_batches or 0, DEFAULT_FINAL_BATCHES)
                                       if r.final_batches is None else r.final_batches), final_top=r.final_top,
                        context=r.eval_context)
    opts = asdict(resolve_options(r.strategy, {**population_options(r.strategy, r.population), **(r.options or {})}))
    hw, full = as_hardware(r.hardware).with_runtime(r.runtime), as_space(r.space)
    w = as_workload(r.workload, full)
    if r.eval_context is not None:
        from supernet.tasks import task_for
        if task_for(full) == "translation":
            raise UserError("--eval-context: a translation supernet scores whole sentence pairs; drop it")
        if r.eval_context > full.max_len:
            raise UserError(f"--eval-context {r.eval_context} exceeds space {full.name!r}'s context (max_len "
                            f"{full.max_len})")
    space = full.restricted(hw.precisions)  # the archs this device runs; the supernet is the full space's
    if r.attention:
        types = r.attention.split(",") if isinstance(r.attention, str) else r.attention
        space = space.with_attention(t.strip() for t in types)
    check_address(r.ray_address)
    from supernet.device import resolve_device, resolve_precision
    dev = resolve_device(r.device) if not r.ray_address else None  # a cluster's devices are its own to resolve
    prec = resolve_precision(r.precision, dev) if dev is not None else (r.precision or "auto")
    from latency.model import z_of
    z_of(r.confidence)  # a confidence outside [0.5, 1) fails here
    latency, model = latency_function(hw, full, w)

    def bound(archs: list[Arch]) -> list[float]:
        return [float(b) for b in model.bound(archs, r.confidence)]
    run_dir = Path(r.out) if r.out else default_run_dir(hw.name, budget.text, r.strategy, r.seed, hw.runtime)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir}: exists and is not a folder")
    memory_budget = MemoryBudget.of(r.memory_budget) if r.memory_budget is not None else None
    recorded = check_resumable(run_dir, run_settings(space, r.strategy, r.seed, budget_s, opts, fidelity, memory_budget,
                                                     hw.runtime))
    choice = choose_supernet(full, r.supernet)
    if recorded and (run_dir / "run.json").is_file():
        from nas.search.report import read_run
        previous = read_run(run_dir)
        if Path(previous.supernet) != choice.folder.resolve():
            raise UserError(f"{run_dir}: its trials were scored with the supernet in {previous.supernet}, not "
                            f"{choice.folder.resolve()}; resume with --supernet {previous.supernet} or use another --out")
    if r.calibrate and not r.ray_address:
        # On the measured device itself, today's speed decides what fits: a machine faster than its
        # dataset's scale runs archs that scale says are over the budget. Timing the reference takes
        # about a second; a supernet still to be trained recalibrates after it.
        from latency.model import calibrate as calibrate_now
        calibrate_now(model)
    plan = SearchPlan(hw, space, w, budget, r.strategy, opts, r.iterations, r.seed, r.eval_batches, r.workers,
                      r.ray_address, run_dir, choice, latency, model.source, recorded,
                      dev, prec, r.confidence, bound, model, r.calibrate, full,
                      bool(r.reuse), fidelity, memory_budget)
    check_reachable(space, bound, budget_s, r.seed, hardware=hw.name,
                    what="predicted latency" if r.confidence == 0.5 else
                    f"predicted latency (its upper bound at {r.confidence:.0%} confidence)",
                    memory=plan.memory, memory_budget=memory_budget)
    return plan


def run_planned_search(plan: SearchPlan, progress: Progress | bool = True,
                       evaluate: Callable[[list[Arch]], list[float]] | None = None) -> SearchOutcome:
    """Carries out a plan. `evaluate` (archs -> losses) replaces the supernet's scorer (tests, or
    a fitness of your own)."""
    from nas.search import REUSED, run_search
    from nas.search.report import SearchRun, feasible, write_run
    from latency.model import calibrate, far_from_dataset, other_cpu
    from supernet.device import slow_precision_note
    p = as_progress(progress)
    hw = plan.hardware
    device = str(plan.device) if plan.device is not None else "auto"
    folder = (prepare_supernet(plan.full_space or plan.space, plan.supernet, p, device)
              if evaluate is None else plan.supernet.folder)
    notes: list[str] = []
    trained = evaluate is None and plan.supernet.action != "use"
    recalibrated = plan.calibrate and (trained or not plan.model.calibration)  # the plan's timing is stale, or not taken
    if recalibrated:
        calibrate(plan.model)  # after any training: nothing else runs now
    found = plan.model.calibration if plan.calibrate else {}
    other = other_cpu(plan.model)
    if other:
        notes.append(f"{other}: " + ("the reference arch rescales predictions to this machine, but " if found else
                                     "predictions stay on its scale (not calibrated), and ")
                     + f"their per-arch error was measured on that CPU only; for a predictor of this one, profile a "
                       f"copy of {hw.name}'s YAML under a new name with this CPU's numbers "
                       f"(`nas profile --hardware my-cpu.yaml --samples 200`)")
    if found:
        change = "faster" if found["scale"] < 1 else "slower"
        notes.append(f"this machine ran the reference arch in {found['reference_now_s'] * 1e3:.2f} ms now against "
                     f"{found['reference_dataset_s'] * 1e3:.2f} ms in the dataset ({abs(1 - found['scale']):.0%} {change}): "
                     f"predictions are rescaled to today's wall clock"
                     + ("; a change this large is unusual: check that nothing else is running" if
                        far_from_dataset(found["scale"]) else ""))
    slow = slow_precision_note(plan.device, plan.precision) if plan.device is not None else None
    if slow:
        notes.append(f"scoring candidates: {slow}")
    p.note(f"latency on {hw.name}: {plan.model.describe()}, workload {plan.workload}; an arch is within "
           f"{plan.budget} when its latency's upper bound at {plan.confidence:.0%} confidence is within it")
    for note in notes:
        p.note(note)
    close = lambda: None  # noqa: E731
    known: list | None = None  # None: no reuse
    fidelity, tokens = plan.fidelity, None
    if evaluate is None:
        ev = supernet_evaluator(folder, fidelity.final_batches, device=plan.device or "cpu",
                                precision=plan.precision if plan.device is not None else None, spread=True,
                                context=fidelity.context)
        tokens = ev.tokens_of
        if plan.workers or plan.ray_address:
            from nas.ray_adapter import RayEvaluatorPool
            precision = None if plan.precision == "auto" else plan.precision
            pool = RayEvaluatorPool(str(folder), fidelity.final_batches, max(1, plan.workers),
                                    functools.partial(_actor_evaluator, precision=precision, context=fidelity.context),
                                    plan.ray_address,
                                    device=device)
            evaluate, close = pool.losses, pool.close
        else:
            evaluate = ev.losses
        if plan.reuse:
            book = score_book(plan, folder)
            evaluate, known = book.wrap(evaluate), book.items()
    elif not _takes_batches(evaluate):
        fidelity = None  # a fitness of one fidelity: every candidate scored alike
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with p.task("search", plan.iterations, unit="arch") as bar:
            result = run_search(plan.space, plan.strategy, evaluate=evaluate, latency=plan.latency,
                                budget_s=plan.budget, iterations=plan.iterations, batch=8, run_dir=plan.run_dir,
                                seed=plan.seed, options=plan.options, hardware=hw.name, bound=plan.bound,
                                progress=lambda done, best: bar.update(done, f"best loss {best:.4f}" if best else ""),
                                known=known, fidelity=fidelity, tokens=tokens,
                                reachable=not recalibrated,  # plan_search checked these predictions
                                memory=plan.memory, memory_budget=plan.memory_budget, runtime=hw.runtime)
    finally:
        close()
    if result.stopped:
        notes.append(result.stopped)
    reused = sum(t["strategy"] == REUSED for t in result.trials)
    if reused:
        notes.append(f"{reused} archs within the budget that earlier searches scored with this supernet joined "
                     f"the ranking (strategy `{REUSED}` in trials.csv); --no-reuse leaves them out")
    ranking = tuple(feasible(result.trials, plan.budget, plan.memory_budget))
    spread = analytic_spread(plan, result.trials, ranking) if plan.model.bundle is None else {}
    if spread:
        notes.append(spread["note"])
    record = SearchRun(hardware=hw.name, space=plan.space.name, space_def=plan.space.to_dict(),
                       workload=plan.workload, latency_budget_s=plan.budget_s,
                       latency_source=plan.latency_source, strategy=plan.strategy, seed=plan.seed,
                       iterations=plan.iterations, supernet=str(Path(folder).resolve()), eval_batches=plan.eval_batches,
                       options=plan.options, confidence=plan.confidence, calibration=dict(plan.model.calibration),
                       analytic_range=spread, reused=reused,
                       fidelity=fidelity.to_dict() if fidelity is not None else {},
                       memory_budget_bytes=plan.memory_budget.bytes if plan.memory_budget is not None else None,
                       runtime=hw.runtime)
    record = write_run(plan.run_dir, result.trials, record)
    return SearchOutcome(plan.run_dir, record, result.trials, ranking, tuple(notes))


def _takes_batches(evaluate: Callable) -> bool:
    """Whether a fitness of the caller's takes (archs, batches): multi-fidelity, or archs alone."""
    import inspect
    try:
        params = [p for p in inspect.signature(evaluate).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    except (TypeError, ValueError):
        return False
    return len(params) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def score_book(plan: SearchPlan, folder: str | Path):
    """The book of losses this search's scorer gave before: same supernet weights (by content),
    split, batches, device kind and precision."""
    from nas.search.scores import ScoreBook, scorer_key
    from supernet.checkpoint import checkpoint_path, read_record
    kind = plan.device.type if plan.device is not None else "ray"  # a cluster's actors: their own kind
    context = {"context": plan.fidelity.context} if plan.fidelity.context else {}  # keys of earlier books unchanged
    key = scorer_key(checkpoint_path(folder), split="val", spread=plan.fidelity.final_batches,
                     data=read_record(folder).data, device=kind, precision=plan.precision, **context)
    return ScoreBook.for_scorer(key)


def analytic_spread(plan: SearchPlan, trials, ranking) -> dict[str, Any]:
    """For a device never measured: the prediction's range at the ends of the profile's constants,
    the best arch within the budget at either end, and what measuring the device would take."""
    import numpy as np
    from latency.model import RANGE_Z
    done = [t for t in trials if t["loss"] < float("inf")]
    if not done or not plan.hardware.has_range:
        return {}
    archs = [Arch.from_json(t["arch"]) for t in done]
    fast, slow = plan.model.predict_range(archs)
    best = {}
    for end, lat in (("fast", fast), ("slow", slow)):
        inside = [(t["loss"], t["arch_id"]) for t, x in zip(done, lat) if plan.budget.admits(x)]
        best[end] = min(inside)[1] if inside else None
    chosen = ranking[0]["arch_id"] if ranking else None
    i = next((k for k, t in enumerate(done) if t["arch_id"] == chosen), None)
    samples = 200
    mean = float(np.mean(plan.latency(archs[: min(len(archs), 50)])))
    minutes = samples * 9 / 8 * (9 * mean + 0.5) / 60  # 2 warm-up + 5 rounds + re-measures; a reference per 8
    changes = {end: b for end, b in best.items() if b != chosen}
    note = (f"{plan.hardware.name} was never measured: the chosen arch's latency is {_ms(fast[i]) if i is not None else '?'}"
            f"-{_ms(slow[i]) if i is not None else '?'} across the profile's constant ranges (point "
            f"{_ms(ranking[0]['latency_s']) if ranking else '?'}); "
            + ("the best arch within the budget is the same at both ends" if not changes else
               "; ".join(f"with the {end} constants the best arch would be {b}" if b else
                         f"with the {end} constants no arch this search scored would fit {plan.budget}"
                         for end, b in changes.items()))
            + (f". Measuring it takes `nas profile --hardware {plan.hardware.name} --samples {samples}` on that "
               f"device, about {max(1, round(minutes))} minutes" if plan.hardware.runtime == "eager" else
               f". `nas profile` times eager PyTorch only (capture in CUDA graphs is not built yet): for the "
               f"{plan.hardware.runtime} runtime this range is what there is"))
    return {"fast_s": float(fast[i]) if i is not None else None, "slow_s": float(slow[i]) if i is not None else None,
            "best_fast": best["fast"], "best_slow": best["slow"], "best": chosen, "note": note,
            "profile_minutes": minutes, "range_z": RANGE_Z}


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def search(hardware: Any, budget: Any = None, *, progress: Progress | bool = True, **fields: Any) -> SearchOutcome:
    """The most accurate arch of `space` within `budget` on `hardware` (a SearchRequest, or its
    fields): validation loss with inherited supernet weights, latency from the hardware's
    predictor. Resumes `out` when it holds this search already. See `plan_search` for what is
    checked first."""
    return run_planned_search(plan_search(hardware, budget, **fields), progress)
