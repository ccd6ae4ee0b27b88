"""`nas search`: the most accurate arch within a latency budget on a hardware profile.

Fitness is the validation loss with inherited supernet weights (batched, cached by arch id);
latency is the hardware's predictor (measured, calibrated or analytic: said in every output).
Every trial lands in an Optuna journal in the run folder, so a killed search resumes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from nas.progress import console, progress, stdout_console
from nas.space_cli import _arch_summary, human
from space import Arch, Workload, analytic_cost, load_space
from space._io import atomic_write_text
from space.arch import dump_yaml
from space.errors import UserError

STRATEGY_NAMES = ["evolution", "hat", "random", "tpe", "nsga2"]


def default_run_dir(hw: str, budget: str, strategy: str, seed: int) -> Path:
    return Path("runs") / f"search-{hw}-{budget}-{strategy}-s{seed}"


def ensure_supernet(space, folder: Path | None) -> Path:
    """The supernet to search with; trains the quick one when there is none (and says so)."""
    from nas.supernet_cli import default_supernet_dir
    from supernet.train import CKPT
    folder = folder or default_supernet_dir(space.name)
    if (folder / CKPT).is_file():
        from supernet.train import load_supernet
        _, ck = load_supernet(folder)
        if ck["step"] >= ck["train"]["steps"]:
            return folder
        console.print(f"the supernet in {folder} is unfinished ({ck['step']}/{ck['train']['steps']} steps): resuming it")
    else:
        console.print(f"no trained supernet in {folder}: training the quick one first "
                      f"(`nas train-supernet --preset quick`, about 10 minutes on 2 CPU cores)")
    from nas.supernet_cli import train_supernet_cmd
    from supernet.tasks import task_for
    task_for(space)  # an encoder-only space stops here, with the reason
    train_supernet_cmd.callback(space_name=space.name, data=None, src_file=None, tgt_file=None, steps=None,
                                out=str(folder), preset="quick", sampling=None, batch_size=None, seq_len=None,
                                lr=None, label_smoothing=None, seed=None, threads=None)
    return folder


def pareto(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trials no other trial beats on both loss and latency, by latency."""
    done = sorted((t for t in trials if t.get("loss") is not None and t["loss"] < float("inf")),
                  key=lambda t: (t["latency_s"], t["loss"]))
    front, best = [], float("inf")
    for t in done:
        if t["loss"] < best:
            front.append(t)
            best = t["loss"]
    return front


def plot_pareto(trials, front, budget_s: float, best, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    done = [t for t in trials if t.get("loss") is not None and t["loss"] < float("inf")]
    ax.scatter([t["latency_s"] * 1e3 for t in done], [t["loss"] for t in done], s=8, c="0.6", label="evaluated")
    ax.plot([t["latency_s"] * 1e3 for t in front], [t["loss"] for t in front], "o-", c="tab:blue", ms=4,
            label="Pareto front")
    ax.axvline(budget_s * 1e3, c="tab:red", ls="--", label=f"budget {budget_s * 1e3:g} ms")
    if best:
        ax.scatter([best["latency_s"] * 1e3], [best["loss"]], marker="*", s=160, c="tab:orange", zorder=5,
                   label="best within budget")
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("validation loss, inherited weights (nats/token)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_run(run_dir: Path, trials: list[dict[str, Any]], archs: dict[str, Arch], budget_s: float,
              meta: dict[str, Any]) -> dict[str, Any] | None:
    import pandas as pd
    feasible = sorted((t for t in trials if t.get("loss") is not None and t["loss"] < float("inf")
                       and t["latency_s"] <= budget_s), key=lambda t: t["loss"])
    best = feasible[0] if feasible else None
    df = pd.DataFrame(trials)
    atomic_write_text(run_dir / "trials.csv", df.to_csv(index=False))
    front = pareto(trials)
    atomic_write_text(run_dir / "pareto.csv", pd.DataFrame(front).to_csv(index=False))
    ranking = [t["arch_id"] for t in feasible]
    atomic_write_text(run_dir / "ranking.json", json.dumps(ranking))
    if best:
        atomic_write_text(run_dir / "best.yaml", dump_yaml(archs[best["arch_id"]].to_dict()))
    atomic_write_text(run_dir / "run.json", json.dumps(meta, indent=2))
    plot_pareto(trials, front, budget_s, best, run_dir / "pareto.png",
                f"{meta['space']} on {meta['hardware']} ({meta['latency_source']} latency), {meta['strategy']}")
    return best


@click.command("search")
@click.option("--hardware", "hw_name", required=True, metavar="NAME|PATH", help="Target hardware profile.")
@click.option("--latency-budget", "budget", required=True, metavar="TIME", help="e.g. 20ms, 0.02s, 1.5s.")
@click.option("--space", "space_name", default="lm-shakespeare", show_default=True, metavar="NAME|PATH")
@click.option("--supernet", "supernet_dir", default=None, type=click.Path(file_okay=False),
              help="Trained supernet (default: runs/supernet-SPACE; trained quick when missing).")
@click.option("--strategy", default="evolution", show_default=True, type=click.Choice(STRATEGY_NAMES))
@click.option("--iterations", default=300, show_default=True, type=click.IntRange(min=1), help="Archs evaluated.")
@click.option("--population", default=None, type=click.IntRange(min=2), help="Population (evolution, hat).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--workload", default=None, metavar="SPEC", help="What latency means (default: the space's).")
@click.option("--eval-batches", default=4, show_default=True, type=click.IntRange(min=1),
              help="Validation batches per fitness evaluation.")
@click.option("--workers", default=0, show_default=True, type=click.IntRange(min=0),
              help="Ray actors scoring candidates in parallel (0: in this process).")
@click.option("--ray-address", default=None, metavar="ADDR", help="Use an existing Ray cluster.")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Run folder (an existing one resumes).")
def search_cmd(hw_name, budget, space_name, supernet_dir, strategy, iterations, population, seed, workload,
               eval_batches, workers, ray_address, out):
    """Search the most accurate arch within a latency budget."""
    from latency.hardware import load_hardware
    from latency.model import latency_model
    from nas.search import parse_duration, run_search
    budget_s = parse_duration(budget)
    hw = load_hardware(hw_name)
    space = load_space(space_name)
    w = Workload.parse(workload, base=space.workload) if workload else space.workload
    lat_model = latency_model(hw, space, w)
    console.print(f"latency on {hw.name}: {lat_model.source} model, workload {w}"
                  + ("  (no measurements of this device: the analytic roofline answers)"
                     if lat_model.source == "analytic" else ""))
    run_dir = Path(out) if out else default_run_dir(hw.name, budget, strategy, seed)
    folder = ensure_supernet(space, Path(supernet_dir) if supernet_dir else None)

    def latency(archs: list[Arch]) -> list[float]:
        return [float(s) for s in lat_model.predict(archs)[0]]

    options = population_options(strategy, population)
    evaluate, close = _scorer(folder, eval_batches, workers, ray_address)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with progress("search", iterations, unit="arch") as bar:
            result = run_search(space, strategy, evaluate=evaluate, latency=latency, budget_s=budget_s,
                                iterations=iterations, batch=8, run_dir=run_dir, seed=seed, options=options,
                                hardware=hw.name,
                                progress=lambda done, best: bar.update(done, f"best loss {best:.4f}" if best else ""))
    finally:
        close()
    trials = result.trials
    archs = {t["arch_id"]: Arch.from_json(t["arch"]) for t in trials}
    meta = {"hardware": hw.name, "space": space.name, "space_def": space.to_dict(), "workload": w.to_dict(),
            "latency_budget_s": budget_s, "latency_source": lat_model.source, "strategy": strategy, "seed": seed,
            "iterations": iterations, "supernet": str(folder.resolve())}
    best = write_run(run_dir, trials, archs, budget_s, meta)
    _print_ranking(trials, archs, budget_s, w, lat_model.source)
    if best is None:
        raise UserError(f"no evaluated arch met {budget}; raise --latency-budget or --iterations")
    console.print(f"best within {budget}: {best['arch_id']} (loss {best['loss']:.4f}, predicted "
                  f"{best['latency_s'] * 1e3:.2f} ms, {lat_model.source}); run folder {run_dir} "
                  f"(trials.csv, best.yaml, pareto.csv, pareto.png, journal.log); export it with "
                  f"`nas export {run_dir} --out model/`")


def population_options(strategy: str, population: int | None) -> dict[str, int]:
    """--population in each strategy's terms (HAT keeps its 1:2:2 parents/mutations/crossovers)."""
    if population is None:
        return {}
    if strategy == "evolution":
        return {"population": population, "sample_size": max(2, population // 4)}
    if strategy == "hat":
        parents = max(2, population // 5)
        return {"population": population, "parents": parents, "mutations": (population - parents) // 2,
                "crossovers": population - parents - (population - parents) // 2}
    if strategy == "nsga2":
        return {"population_size": population}
    raise UserError(f"--population does not apply to --strategy {strategy}")


def _print_ranking(trials, archs, budget_s, workload, source, top: int = 10) -> None:
    import math
    feasible = sorted((t for t in trials if t.get("loss") is not None and t["loss"] < float("inf")
                       and t["latency_s"] <= budget_s), key=lambda t: t["loss"])[:top]
    table = Table("rank", "arch", "val loss", "ppl", f"latency ({source})", "params", "layout", box=None,
                  title=f"top {len(feasible)} of {len(trials)} trials within {budget_s * 1e3:g} ms", title_justify="left")
    for i, t in enumerate(feasible, 1):
        a = archs[t["arch_id"]]
        table.add_row(str(i), a.id, f"{t['loss']:.4f}", f"{math.exp(t['loss']):.2f}", f"{t['latency_s'] * 1e3:.2f} ms",
                      human(analytic_cost(a, workload).params), escape(_arch_summary(a)))
    stdout_console().print(table)


def _scorer(folder: Path, eval_batches: int, workers: int, ray_address: str | None):
    """(evaluate(archs) -> losses, close): in process, or by Ray actors that each hold the supernet."""
    if workers or ray_address:
        from nas.ray_pool import RayEvaluatorPool
        pool = RayEvaluatorPool(str(folder), eval_batches, max(1, workers), ray_address)
        return pool.losses, pool.close
    from nas.supernet_cli import supernet_evaluator as make
    ev, _ = make(str(folder), eval_batches)
    return ev.losses, (lambda: None)
