"""The search stage of the API: the most accurate arch within a latency budget.

`plan_search` checks everything a search needs — budget, hardware, space, workload, strategy and
its options, Ray, the run folder, the supernet — and that the budget is reachable (that needs only
the latency predictor), in a few seconds and before any training. `search` then trains the quick
supernet if there is none, searches, and writes the run folder.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from nas.api._common import as_hardware, as_space, as_workload
from nas.api._latency import latency_function
from nas.api.progress import Progress, as_progress
from nas.api._supernet import SupernetChoice, choose_supernet, prepare_supernet, supernet_evaluator
from space import Arch, SearchSpace, Workload
from space.errors import UserError

DEFAULT_ITERATIONS = 300


def default_run_dir(hw: str, budget: str, strategy: str, seed: int) -> Path:
    return Path("runs") / f"search-{hw}-{budget}-{strategy}-s{seed}"


def population_options(strategy: str, population: int | None) -> dict[str, int]:
    """--population in each strategy's terms (HAT keeps its 1:2:2 parents/mutations/crossovers)."""
    if population is None:
        return {}
    if population < 2:
        raise UserError(f"--population {population}: must be at least 2")
    if strategy == "evolution":
        return {"population": population, "sample_size": max(2, population // 4)}
    if strategy == "hat":
        parents = max(2, population // 5)
        return {"population": population, "parents": parents, "mutations": (population - parents) // 2,
                "crossovers": population - parents - (population - parents) // 2}
    if strategy == "nsga2":
        return {"population_size": population}
    raise UserError(f"--population does not apply to --strategy {strategy}")


@dataclass(frozen=True)
class SearchPlan:
    """A checked search request: nothing trained or evaluated yet."""

    hardware: Any  # latency.hardware.Hardware
    space: SearchSpace
    workload: Workload
    budget_s: float
    budget: str  # as the user wrote it
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
    device: str = "cpu"  # where the fitness (inherited-weight loss) is computed
    precision: str = "fp32"


@dataclass(frozen=True)
class SearchOutcome:
    run_dir: Path
    record: Any  # nas.search.report.SearchRun
    trials: tuple[dict[str, Any], ...]  # every evaluated arch: number, arch_id, loss, latency_s, strategy, arch
    ranking: tuple[dict[str, Any], ...]  # the trials within the budget, best first

    @property
    def best(self) -> dict[str, Any] | None:
        return self.ranking[0] if self.ranking else None

    @property
    def best_arch(self) -> Arch | None:
        return Arch.from_json(self.ranking[0]["arch"]) if self.ranking else None


def plan_search(hardware: str | Any, budget: str | float, *, space: str | Path | SearchSpace = "lm-shakespeare",
                supernet: str | Path | None = None, strategy: str = "evolution",
                iterations: int = DEFAULT_ITERATIONS, population: int | None = None,
                options: dict[str, Any] | None = None, seed: int = 0, workload: str | Workload | None = None,
                eval_batches: int = 4, workers: int = 0, ray_address: str | None = None,
                out: str | Path | None = None, device: str = "auto", precision: str | None = None) -> SearchPlan:
    """Checks a search request; raises a UserError (one line) for the first thing wrong.
    `budget`: a duration string ("20ms") or seconds; `device`/`precision`: where the fitness runs."""
    from nas.ray_adapter import check_address
    from nas.search import check_reachable, parse_duration, resolve_options, strategy_class
    from nas.search.driver import run_settings
    from nas.search.study import check_resumable
    budget_s = parse_duration(budget) if isinstance(budget, str) else parse_duration(f"{budget}s")
    budget_text = budget if isinstance(budget, str) else f"{budget:g}s"
    for name, value, least in (("iterations", iterations, 1), ("eval_batches", eval_batches, 1), ("workers", workers, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UserError(f"--{name.replace('_', '-')} {value!r}: must be an integer of at least {least}")
    strategy_class(strategy)
    opts = asdict(resolve_options(strategy, {**population_options(strategy, population), **(options or {})}))
    hw, space = as_hardware(hardware), as_space(space)
    w = as_workload(workload, space)
    check_address(ray_address)
    from supernet.device import resolve_device, resolve_precision
    dev = resolve_device(device) if not ray_address else None  # a cluster's devices are its own to resolve
    prec = resolve_precision(precision, dev) if dev is not None else (precision or "auto")
    latency, model = latency_function(hw, space, w)
    check_reachable(space, latency, budget_s, seed, hardware=hw.name)
    run_dir = Path(out) if out else default_run_dir(hw.name, budget_text, strategy, seed)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir}: exists and is not a folder")
    recorded = check_resumable(run_dir, run_settings(space, strategy, seed, budget_s, opts))
    choice = choose_supernet(space, supernet)
    if recorded and (run_dir / "run.json").is_file():
        from nas.search.report import read_run
        previous = read_run(run_dir)
        if Path(previous.supernet) != choice.folder.resolve():
            raise UserError(f"{run_dir}: its trials were scored with the supernet in {previous.supernet}, not "
                            f"{choice.folder.resolve()}; resume with --supernet {previous.supernet} or use another --out")
    return SearchPlan(hw, space, w, budget_s, budget_text, strategy, opts, iterations, seed, eval_batches, workers,
                      ray_address, run_dir, choice, latency, model.source, recorded,
                      str(dev) if dev is not None else device, prec)


def run_planned_search(plan: SearchPlan, progress: Progress | bool = True,
                       evaluate: Callable[[list[Arch]], list[float]] | None = None) -> SearchOutcome:
    """Carries out a plan. `evaluate` (archs -> losses) replaces the supernet's scorer (tests, or
    a fitness of your own)."""
    from nas.search import run_search
    from nas.search.report import SearchRun, feasible, write_run
    p = as_progress(progress)
    hw = plan.hardware
    p.note(f"latency on {hw.name}: {plan.latency_source} model, workload {plan.workload}"
           + ("  (no measurements of this device: the analytic roofline answers)"
              if plan.latency_source == "analytic" else ""))
    folder = (prepare_supernet(plan.space, plan.supernet, p, plan.device if not plan.ray_address else "auto")
              if evaluate is None else plan.supernet.folder)
    close = lambda: None  # noqa: E731
    if evaluate is None:
        if plan.workers or plan.ray_address:
            from nas.ray_adapter import RayEvaluatorPool
            pool = RayEvaluatorPool(str(folder), plan.eval_batches, max(1, plan.workers), plan.ray_address,
                                    device=plan.device if not plan.ray_address else "auto",
                                    precision=None if plan.precision == "auto" else plan.precision)
            evaluate, close = pool.losses, pool.close
        else:
            evaluate = supernet_evaluator(folder, plan.eval_batches, device=plan.device,
                                          precision=plan.precision).losses
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with p.task("search", plan.iterations, unit="arch") as bar:
            result = run_search(plan.space, plan.strategy, evaluate=evaluate, latency=plan.latency,
                                budget_s=plan.budget_s, iterations=plan.iterations, batch=8, run_dir=plan.run_dir,
                                seed=plan.seed, options=plan.options, hardware=hw.name,
                                progress=lambda done, best: bar.update(done, f"best loss {best:.4f}" if best else ""))
    finally:
        close()
    record = SearchRun(hardware=hw.name, space=plan.space.name, space_def=plan.space.to_dict(),
                       workload=plan.workload.to_dict(), latency_budget_s=plan.budget_s,
                       latency_source=plan.latency_source, strategy=plan.strategy, seed=plan.seed,
                       iterations=plan.iterations, supernet=str(Path(folder).resolve()), eval_batches=plan.eval_batches,
                       options=plan.options)
    record = write_run(plan.run_dir, result.trials, record)
    return SearchOutcome(plan.run_dir, record, result.trials, tuple(feasible(result.trials, plan.budget_s)))


def search(hardware: str | Any, budget: str | float, *, space: str | Path | SearchSpace = "lm-shakespeare",
           supernet: str | Path | None = None, strategy: str = "evolution", iterations: int = DEFAULT_ITERATIONS,
           population: int | None = None, options: dict[str, Any] | None = None, seed: int = 0,
           workload: str | Workload | None = None, eval_batches: int = 4, workers: int = 0,
           ray_address: str | None = None, out: str | Path | None = None, device: str = "auto",
           precision: str | None = None, progress: Progress | bool = True) -> SearchOutcome:
    """The most accurate arch of `space` within `budget` on `hardware`: validation loss with
    inherited supernet weights, latency from the hardware's predictor. Resumes `out` when it holds
    this search already. See `plan_search` for what is checked first."""
    plan = plan_search(hardware, budget, space=space, supernet=supernet, strategy=strategy, iterations=iterations,
                       population=population, options=options, seed=seed, workload=workload,
                       eval_batches=eval_batches, workers=workers, ray_address=ray_address, out=out,
                       device=device, precision=precision)
    return run_planned_search(plan, progress)
