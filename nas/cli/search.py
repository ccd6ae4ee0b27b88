"""`nas search`: the most accurate arch within a latency budget on a hardware profile."""
from __future__ import annotations

import math
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from latency.hardware import RUNTIMES
from nas import api
from nas.cli._common import PROGRESS, console, device_options, stdout_console
from nas.api import (DEFAULT_CONFIDENCE, DEFAULT_EVAL_BATCHES, DEFAULT_FINAL_BATCHES, DEFAULT_FINAL_TOP,
                     DEFAULT_HURDLE_BATCHES, DEFAULT_ITERATIONS)
from nas.search import REUSED, STRATEGIES
from nas.search.budget import format_bytes
from space import Arch, analytic_cost
from space.display import arch_summary, human
from space.errors import UserError
from space.options import parse_pairs


@click.command("search")
@click.option("--hardware", "hw_name", required=True, metavar="NAME|PATH", help="Target hardware profile.")
@click.option("--latency-budget", "budget", required=True, metavar="TIME", help="e.g. 20ms, 0.02s, 1.5s.")
@click.option("--memory-budget", default=None, metavar="SIZE",
              help="A second budget: peak inference memory for the workload (weights at their precision, decode "
                   "cache or state, activations), e.g. 8MB, 512KiB.")
@click.option("--space", "space_name", default="lm-shakespeare", show_default=True, metavar="NAME|PATH")
@click.option("--supernet", "supernet_dir", default=None, type=click.Path(file_okay=False),
              help="Trained supernet (default: runs/supernet-SPACE, else the one shipped with hwnas, "
                   "else the quick one trained first).")
@click.option("--strategy", default="evolution", show_default=True, type=click.Choice(STRATEGIES.names()),
              help="Search strategy (registered: " + ", ".join(STRATEGIES.names()) + ").")
@click.option("--iterations", default=DEFAULT_ITERATIONS, show_default=True, type=click.IntRange(min=1),
              help="Archs evaluated.")
@click.option("--population", default=None, type=click.IntRange(min=2), help="Population (evolution, hat, nsga2).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A strategy option, repeatable, e.g. --option screen=1 (evolution: no accuracy-model screening of "
                   "its mutations); an unknown key is refused with the strategy's options.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--workload", default=None, metavar="SPEC", help="What latency means (default: the space's).")
@click.option("--runtime", type=click.Choice(RUNTIMES), default=None,
              help="What the budget is for on a GPU: eager PyTorch (host dispatch per op) or decoding replayed "
                   "from CUDA graphs (default: the profile's first, eager).")
@click.option("--eval-batches", default=DEFAULT_EVAL_BATCHES, show_default=True, type=click.IntRange(min=1),
              help="Validation batches of every candidate's cheap fitness.")
@click.option("--hurdle-batches", default=None, type=click.IntRange(min=1),
              help=f"Validation batches of the contenders (cheap loss in the best fifth so far) "
                   f"[default: {DEFAULT_HURDLE_BATCHES}]; --hurdle-batches equal to --eval-batches turns the hurdle off.")
@click.option("--final-batches", default=None, type=click.IntRange(min=1),
              help=f"Validation batches the final top archs are re-scored on before the answer is chosen "
                   f"[default: {DEFAULT_FINAL_BATCHES}].")
@click.option("--final-top", default=DEFAULT_FINAL_TOP, show_default=True, type=click.IntRange(min=1),
              help="How many archs within the budget are re-scored on --final-batches: the best of each "
                   "structure (depth, width, precision) first, then the next best.")
@click.option("--attention", default=None, metavar="TYPES",
              help="Search only archs whose layers use these attention types (comma-separated, e.g. softmax or "
                   "window,linear): the best of one kind. Default: every type the space offers.")
@click.option("--eval-context", default=None, type=click.IntRange(min=2), metavar="N",
              help="Language models: score every loss on windows of N tokens, the context the model will work at "
                   "(e.g. the workload's prompt length); default: the supernet's training length.")
@click.option("--workers", default=0, show_default=True, type=click.IntRange(min=0),
              help="Ray actors scoring candidates in parallel (0: in this process).")
@click.option("--ray-address", default=None, metavar="ADDR", help="Use an existing Ray cluster (HOST:PORT).")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Run folder (an existing one resumes).")
@click.option("--confidence", default=DEFAULT_CONFIDENCE, show_default=True, type=click.FloatRange(0.5, 0.999),
              help="An arch is within the budget when the upper bound of its predicted latency at this confidence "
                   "is (0.5: the point prediction).")
@click.option("--calibrate/--no-calibrate", default=True, show_default=True,
              help="On the measured device itself, time the reference arch first and rescale predictions to "
                   "today's wall clock.")
@click.option("--reuse/--no-reuse", default=True, show_default=True,
              help="Never score an arch twice with this supernet (scores kept in $HWNAS_HOME/scores), and let the "
                   "best archs earlier searches scored within the budget compete for the answer; --no-reuse leaves "
                   "them out.")
@device_options
def search_cmd(hw_name, budget, memory_budget, space_name, supernet_dir, strategy, iterations, population, options, seed,
               workload, runtime, eval_batches, hurdle_batches, final_batches, final_top, attention, eval_context, workers, ray_address, out,
               confidence, calibrate, reuse, device, precision):
    """Search the most accurate arch within a latency budget (fitness on --device)."""
    request = api.SearchRequest(hw_name, budget, space=space_name, supernet=supernet_dir, strategy=strategy,
                                iterations=iterations, population=population, options=parse_options(options),
                                seed=seed, workload=workload, eval_batches=eval_batches, hurdle_batches=hurdle_batches,
                                final_batches=final_batches, final_top=final_top, workers=workers, ray_address=ray_address, out=out, device=device,
                                precision=precision, confidence=confidence, calibrate=calibrate, reuse=reuse,
                                memory_budget=memory_budget, eval_context=eval_context,
                                attention=attention, runtime=runtime)
    plan = api.plan_search(request)
    outcome = api.run_planned_search(plan, progress=PROGRESS)
    _print_ranking(outcome, plan)
    for note in outcome.notes:
        console.print(f"note: {note}")
    best = outcome.best
    if best is None:
        raise UserError(f"no evaluated arch met {budget}" + (f" and {plan.memory_budget}" if plan.memory_budget else "")
                        + "; raise --latency-budget" + (" or --memory-budget" if plan.memory_budget else "")
                        + " or --iterations")
    console.print(f"best within {budget}: {best['arch_id']} (validation loss {best['loss']:.4f}{_on(best)}, "
                  f"predicted {best['latency_s'] * 1e3:.2f} ms, at most {best['latency_bound_s'] * 1e3:.2f} ms at "
                  f"{plan.confidence:.0%} confidence, {plan.latency_source}, {plan.hardware.runtime} runtime: "
                  f"{plan.budget.used(best['latency_bound_s']):.0%} of the budget{_memory(best, plan)}); "
                  f"run folder {outcome.run_dir} "
                  f"(trials.csv, best.yaml, pareto.csv, pareto.png, journal.log); export it with "
                  f"`nas export {outcome.run_dir} --out model/`, time it with `nas measure model/`")
    phases = plan.model.phases([Arch.from_json(best["arch"])], [best["latency_s"]])[0] if plan.model else None
    if phases:
        console.print(f"  of its predicted {best['latency_s'] * 1e3:.2f} ms: prefill (time to first token) "
                      f"{phases[0] * 1e3:.2f} ms, then {phases[1] * 1e3:.3f} ms per token for "
                      f"{plan.workload.gen_tokens} tokens (workload {plan.workload})")


def _print_ranking(outcome, plan, top: int = 10) -> None:
    shown = outcome.ranking[:top]
    table = Table("rank", "arch", "val loss", "tokens", "ppl", f"predicted ({plan.latency_source}{', ' + plan.hardware.runtime if plan.hardware.kind == 'gpu' else ''})",
                  f"bound ({plan.confidence:.0%})", "budget used", "memory", "params", "layout", box=None,
                  title=f"top {len(shown)} of {len(outcome.trials)} trials within {plan.budget_s * 1e3:g} ms"
                        + (f" and {plan.memory_budget}" if plan.memory_budget else ""),
                  title_justify="left")
    for i, t in enumerate(shown, 1):
        a = Arch.from_json(t["arch"])
        name = a.id + (" (reused)" if t["strategy"] == REUSED else "")
        table.add_row(str(i), name, f"{t['loss']:.4f}", _tokens(t), f"{math.exp(t['loss']):.2f}",
                      f"{t['latency_s'] * 1e3:.2f} ms", f"{t['latency_bound_s'] * 1e3:.2f} ms",
                      f"{plan.budget.used(t['latency_bound_s']):.0%}", _bytes(t, plan),
                      human(analytic_cost(a, plan.workload).params),
                      escape(arch_summary(a)))
    stdout_console().print(table)


def _bytes(t, plan) -> str:
    m = t.get("memory_bytes")
    if not isinstance(m, (int, float)) or m != m:
        return "-"
    used = f" ({plan.memory_budget.used(m):.0%})" if plan.memory_budget else ""
    return format_bytes(m) + used


def _memory(t, plan) -> str:
    m = t.get("memory_bytes")
    if not isinstance(m, (int, float)) or m != m:
        return ""
    return f"; memory {format_bytes(m)}" + (f", {plan.memory_budget.used(m):.0%} of {plan.memory_budget}"
                                            if plan.memory_budget else "")


def _tokens(t) -> str:
    n = t.get("tokens")
    return human(int(n)) if isinstance(n, (int, float)) and n == n else "-"


def _on(t) -> str:
    n = t.get("tokens")
    return f" on {int(n):,} tokens" if isinstance(n, (int, float)) and n == n else ""


def parse_options(items: tuple[str, ...]) -> dict[str, Any] | None:
    """--option KEY=VALUE pairs (see space.options.parse_pairs), a bad one as click's usage error."""
    try:
        return parse_pairs(items)
    except UserError as exc:
        raise click.BadParameter(str(exc).removeprefix("--option "), param_hint="--option") from None

