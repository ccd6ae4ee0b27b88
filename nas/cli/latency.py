"""`nas profile`, `nas fit-predictor`, `nas predict`, `nas hardware list|show`."""
from __future__ import annotations

import click
from rich.table import Table

from latency.hardware import RUNTIMES
from latency.protocol import BACKENDS
from nas import api
from nas.cli._common import PROGRESS, console, stdout_console
from space.errors import UserError


@click.command("profile")
@click.option("--hardware", "hw_name", required=True, metavar="NAME|PATH", help="Hardware profile to measure.")
@click.option("--space", "space_name", default="lm-shakespeare", show_default=True, metavar="NAME|PATH")
@click.option("--samples", default=200, show_default=True, type=click.IntRange(min=1), help="Archs to measure.")
@click.option("--workload", default=None, metavar="SPEC", help="e.g. batch=1,len=64,gen=32 (default: the space's).")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Dataset CSV (default: the hardware's in $HWNAS_HOME, ~/.hwnas). An existing one is resumed.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the arch sample.")
@click.option("--group", default=8, show_default=True, type=click.IntRange(min=1), help="Archs timed interleaved.")
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(min=3), help="Interleaved rounds.")
@click.option("--max-spread", default=0.05, show_default=True, type=float, help="Re-measure above this relative IQR.")
@click.option("--threads", default=None, type=int, help="CPU threads (default: the profile's, else torch's).")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="Time on the Ray node offering resource NAME (or a GPU); 'local' starts a private local Ray.")
@click.option("--backend", type=click.Choice(BACKENDS), default="torch", show_default=True,
              help="Run the models with PyTorch, or exported to ONNX Runtime (CPU, forward workloads).")
def profile_cmd(hw_name, space_name, samples, workload, out, seed, group, rounds, max_spread, threads, ray_address,
                backend):
    """Time sampled SubTransformers on this device into a latency dataset."""
    res = api.profile(hw_name, space=space_name, samples=samples, workload=workload, out=out, seed=seed, group=group,
                      rounds=rounds, max_spread=max_spread, threads=threads, ray_address=ray_address, backend=backend,
                      progress=PROGRESS)
    console.print(f"{res.added} archs measured now, {res.rows} in the dataset for {hw_name} / this workload; median "
                  f"latency {res.median_s * 1e3:.2f} ms, median spread {res.median_spread:.1%} -> {res.dataset}")


@click.command("hardware")
@click.argument("action", type=click.Choice(["list", "show"]))
@click.argument("name", required=False, metavar="[NAME|PATH]")
@click.option("--space", "space_name", default="lm-shakespeare", show_default=True, metavar="NAME|PATH",
              help="Space whose predictor status is shown.")
def hardware_cmd(action: str, name: str | None, space_name: str) -> None:
    """List hardware profiles, or show one with its spec, sources and predictor status."""
    out = stdout_console()
    if action == "list":
        table = Table("hardware", "kind", "peak FP32", "bandwidth", f"predictor for {space_name}", "description",
                      box=None)
        for info in api.hardware(space=space_name):
            hw = info.hardware
            table.add_row(hw.name, hw.kind, f"{hw.peak_flops['fp32'] / 1e12:.3g} TFLOP/s",
                          f"{hw.memory_bandwidth / 1e9:.4g} GB/s", info.predictor, hw.description)
        out.print(table)
        return
    if not name:
        raise UserError("hardware show: name a profile, e.g. `nas hardware show a100` (see `nas hardware list`)")
    info = api.hardware(name, space=space_name)[0]
    hw = info.hardware
    out.print(f"[bold]{hw.name}[/bold]: {hw.description}", highlight=False)
    out.print(f"[bold]latency for {space_name} is predicted by: {info.predictor}[/bold]")
    out.print(f"kind {hw.kind}, device {hw.device}, dtype {hw.dtype}" + (f", {hw.threads} threads" if hw.threads else "")
              + (f"; CPU {', '.join(f'{k} {v}' for k, v in hw.cpu.items())}" if hw.cpu else ""), highlight=False)
    for dtype, peak in hw.peak_flops.items():
        out.print(f"  peak {dtype}: {peak / 1e12:.4g} TFLOP/s")
    out.print(f"  memory bandwidth: {hw.memory_bandwidth / 1e9:.4g} GB/s; per-op overhead: {hw.op_overhead * 1e6:.3g} us"
              + (f" (range {hw.overhead('fast') * 1e6:.3g}-{hw.overhead('slow') * 1e6:.3g} us)" if hw.op_overhead_range
                 else ""))
    for what, (lo, pt, hi) in hw.efficiency.items():
        out.print(f"  achieved {what}: {pt:.0%} of peak (range {lo:.0%}-{hi:.0%})")
    out.print(f"  runtimes: {', '.join(hw.runtimes)} (default {hw.runtime})"
              + (f"; CUDA graph launch {hw.launch() * 1e6:.3g} us (range {hw.launch('fast') * 1e6:.3g}-"
                 f"{hw.launch('slow') * 1e6:.3g} us)" if hw.graph_launch else ""), highlight=False)
    for src in hw.sources:
        out.print(f"  source: {src}", highlight=False)
    if hw.measured:
        out.print(f"  measured: {hw.measured}", highlight=False)


@click.command("predict")
@click.option("--hardware", "hw_name", required=True, metavar="NAME|PATH")
@click.option("--arch", "arch_file", required=True, type=click.Path(dir_okay=False))
@click.option("--space", "space_name", default=None, metavar="NAME|PATH",
              help="Space of the archs (default: the shipped space they belong to).")
@click.option("--workload", default=None, metavar="SPEC")
@click.option("--runtime", type=click.Choice(RUNTIMES), default=None,
              help="On a GPU: eager PyTorch or CUDA graphs (default: the profile's first, eager).")
def predict_cmd(hw_name, arch_file, space_name, workload, runtime):
    """Predicted latency of archs on a hardware profile, with its uncertainty and source."""
    preds = api.predict(hw_name, arch_file, space=space_name, workload=workload, runtime=runtime)
    phases = preds[0].prefill_s is not None
    table = Table("arch", "predicted", *(["first token", "per token"] if phases else []), "uncertainty", "source",
                  box=None, title=f"{hw_name} ({preds[0].runtime} runtime)", title_justify="left")
    for p in preds:
        split = [f"{p.prefill_s * 1e3:.3f} ms", f"{p.decode_per_token_s * 1e3:.4f} ms"] if phases else []
        table.add_row(p.arch.id, f"{p.seconds * 1e3:.3f} ms", *split, f"± {p.rel_std:.0%}", p.source)
    stdout_console().print(table)
    sources = {p.source for p in preds}
    if phases:
        console.print("first token = the prompt's prefill; per token = each decode step after it (the prediction "
                      + ("split by the kernel model's time of each call)" if sources == {"kernels"} else
                         "split by the kernel model's time of each call, or the analytic model's share of the first "
                         "call)" if "kernels" in sources else "split by the analytic model's share of the first call)"))
    if "kernels" in sources:
        console.print(f"note: {hw_name} has no measurements here; this is the kernel model from its measured kernel "
                      f"tables (`nas hardware show {hw_name}`; `nas profile --hardware {hw_name}` on that device measures it)"
                      + ("; int8 archs, which its tables do not time, from the analytic roofline" if "analytic" in sources
                         else ""))
    elif "analytic" in sources:
        console.print(f"note: {hw_name} has no measurements here; this is the analytic roofline model "
                      f"(run `nas profile --hardware {hw_name}` on that device to measure it)")


@click.command("fit-predictor")
@click.option("--hardware", "hw_name", required=True, metavar="NAME|PATH")
@click.option("--space", "space_name", default="lm-shakespeare", show_default=True, metavar="NAME|PATH")
@click.option("--workload", default=None, metavar="SPEC", help="Which measured workload (default: the space's).")
@click.option("--data", default=None, type=click.Path(dir_okay=False),
              help="Latency dataset CSV (default: the hardware's, yours or the shipped one).")
@click.option("--predictor", "kind", default="gbt", show_default=True, type=click.Choice(api.learned_predictors()),
              help="Model to fit and save (registered: " + ", ".join(api.learned_predictors()) + ").")
@click.option("--test-fraction", default=0.2, show_default=True, type=click.FloatRange(0.05, 0.5))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Bundle file to write; it then answers nothing by itself (default: a candidate for the hardware's "
                   "folder in $HWNAS_HOME, which takes over only if its held-out error is lower).")
@click.option("--force", is_flag=True, help="Let the new predictor answer even if the current one is better.")
def fit_predictor_cmd(hw_name, space_name, workload, data, kind, test_fraction, seed, out, force):
    """Fit a latency predictor for a hardware profile, compare it with the one that answers today on
    held-out archs, and save it (it takes over only when it is better)."""
    rep = api.fit_predictor(hw_name, space=space_name, workload=workload, data=data, predictor=kind,
                            test_fraction=test_fraction, seed=seed, out=out, force=force, progress=PROGRESS)
    table = Table("model", "RMSE", "MAPE", "within ±5%", "within ±10%", "Kendall τ", box=None,
                  title=f"{hw_name} / {space_name}: held-out {rep.test_rows} of {rep.rows} archs", title_justify="left")
    for name, m in rep.metrics.items():
        table.add_row(name, f"{m['rmse_ms']:.3f} ms", f"{m['mape']:.1f}%", f"{m['within_5']:.1%}",
                      f"{m['within_10']:.1%}", f"{m['kendall_tau']:.3f}")
    stdout_console().print(table)
    console.print(f"measurement repeatability: median spread (relative IQR of rounds) "
                  f"{rep.repeatability['median_spread']:.1%}, 90th percentile {rep.repeatability['p90_spread']:.1%}")
    console.print(("answers now: " if rep.answers else "does not answer: ") + rep.verdict)
