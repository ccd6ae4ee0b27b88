"""`nas profile`, `nas fit-predictor`, `nas predict`, `nas hardware list|show`."""
from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from nas.progress import console, progress, stdout_console
from space import Workload, load_archs, load_space
from space.errors import UserError


def _workload(spec: str | None, base: Workload) -> Workload:
    return Workload.parse(spec, base=base) if spec else base


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
@click.option("--backend", type=click.Choice(["torch", "onnxruntime"]), default="torch", show_default=True,
              help="Run the models with PyTorch, or exported to ONNX Runtime (CPU, forward workloads).")
def profile_cmd(hw_name, space_name, samples, workload, out, seed, group, rounds, max_spread, threads, ray_address,
                backend):
    """Time sampled SubTransformers on this device into a latency dataset."""
    from latency.hardware import load_hardware
    from latency.profile import profile
    from latency.protocol import TimingProtocol
    from latency.store import dataset_path
    hw = load_hardware(hw_name)
    space = load_space(space_name)
    w = _workload(workload, space.workload)
    protocol = TimingProtocol(rounds=rounds, max_spread=max_spread)
    threads = threads or hw.threads
    path = Path(out) if out else dataset_path(hw.name)
    run_group = None
    if ray_address and backend != "torch":
        raise UserError("--backend onnxruntime runs locally only; drop --ray-address")
    if ray_address:
        from latency.remote import ray_group_runner
        run_group = ray_group_runner(hw, ray_address)
    else:
        from latency.profile import check_device
        check_device(hw)
    console.print(f"profiling {samples} archs of {space.name} on {hw.name} ({hw.device}), workload {w}, "
                  f"{rounds} interleaved rounds in groups of {group}; dataset {path}")
    with progress("profile", samples, unit="arch") as bar:
        added = profile(space, hw, w, samples, path, seed=seed, protocol=protocol, group=group, threads=threads,
                        run_group=run_group, backend=backend, progress=lambda n, total, info: bar.update(samples - total + n, info))
    from latency.dataset import read_dataset
    df = read_dataset(path)
    mine = df[(df.hardware == hw.name) & (df.workload == str(w))]
    console.print(f"{added} archs measured now, {len(mine)} in the dataset for {hw.name} / {w}; median latency "
                  f"{mine.median_s.median() * 1e3:.2f} ms, median spread {mine.spread.median():.1%} -> {path}")
    if len(mine[mine.space == space.name]) >= 30:  # enough to learn from: the measured predictor takes over now
        fit_and_save(hw, space, w, path, verbose=False)
    else:
        console.print(f"{hw.name} keeps its analytic model until 30 archs are measured "
                      f"(then, or with `nas fit-predictor`, a measured predictor takes over)")


@click.command("hardware")
@click.argument("action", type=click.Choice(["list", "show"]))
@click.argument("name", required=False, metavar="[NAME|PATH]")
@click.option("--space", "space_name", default="lm-shakespeare", show_default=True, metavar="NAME|PATH",
              help="Space whose predictor status is shown.")
def hardware_cmd(action: str, name: str | None, space_name: str) -> None:
    """List hardware profiles, or show one with its spec, sources and predictor status."""
    from latency.hardware import builtin_hardware, load_hardware
    from latency.model import predictor_status
    space = load_space(space_name)
    out = stdout_console()
    if action == "list":
        table = Table("hardware", "kind", "peak FP32", "bandwidth", f"predictor for {space.name}", "description",
                      box=None)
        for n in builtin_hardware():
            hw = load_hardware(n)
            table.add_row(n, hw.kind, f"{hw.peak_flops['fp32'] / 1e12:.3g} TFLOP/s",
                          f"{hw.memory_bandwidth / 1e9:.4g} GB/s", predictor_status(hw, space, space.workload),
                          hw.description)
        out.print(table)
        return
    if not name:
        raise UserError("hardware show: name a profile, e.g. `nas hardware show a100` (see `nas hardware list`)")
    hw = load_hardware(name)
    out.print(f"[bold]{hw.name}[/bold]: {hw.description}", highlight=False)
    out.print(f"kind {hw.kind}, device {hw.device}, dtype {hw.dtype}" + (f", {hw.threads} threads" if hw.threads else ""))
    for dtype, peak in hw.peak_flops.items():
        out.print(f"  peak {dtype}: {peak / 1e12:.4g} TFLOP/s")
    out.print(f"  memory bandwidth: {hw.memory_bandwidth / 1e9:.4g} GB/s; per-op overhead: {hw.op_overhead * 1e6:.3g} us")
    for src in hw.sources:
        out.print(f"  source: {src}", highlight=False)
    if hw.measured:
        out.print(f"  measured: {hw.measured}", highlight=False)
    out.print(f"predictor for {space.name} / {space.workload}: {predictor_status(hw, space, space.workload)}")


@click.command("predict")
@click.option("--hardware", "hw_name", required=True, metavar="NAME|PATH")
@click.option("--arch", "arch_file", required=True, type=click.Path(dir_okay=False))
@click.option("--space", "space_name", default=None, metavar="NAME|PATH",
              help="Space of the archs (default: the shipped space they belong to).")
@click.option("--workload", default=None, metavar="SPEC")
def predict_cmd(hw_name, arch_file, space_name, workload):
    """Predicted latency of archs on a hardware profile, with its uncertainty and source."""
    from latency.hardware import load_hardware
    from latency.model import latency_model, space_for
    archs = load_archs(arch_file)
    hw = load_hardware(hw_name)
    space = load_space(space_name) if space_name else space_for(archs[0])
    w = _workload(workload, space.workload)
    model = latency_model(hw, space, w)
    seconds, rel = model.predict(archs)
    table = Table("arch", "predicted", "uncertainty", "source", box=None,
                  title=f"{hw.name}, workload {w}", title_justify="left")
    for a, s, r in zip(archs, seconds, rel):
        table.add_row(a.id, f"{s * 1e3:.3f} ms", f"± {r:.0%}", model.source)
    stdout_console().print(table)
    if model.source == "analytic":
        console.print(f"note: {hw.name} has no measurements here; this is the analytic roofline model "
                      f"(run `nas profile --hardware {hw.name}` on that device to measure it)")


@click.command("fit-predictor")
@click.option("--hardware", "hw_name", required=True, metavar="NAME|PATH")
@click.option("--space", "space_name", default="lm-shakespeare", show_default=True, metavar="NAME|PATH")
@click.option("--workload", default=None, metavar="SPEC", help="Which measured workload (default: the space's).")
@click.option("--data", default=None, type=click.Path(dir_okay=False),
              help="Latency dataset CSV (default: the hardware's, yours or the shipped one).")
@click.option("--predictor", "kind", default="gbt", show_default=True,
              type=click.Choice(["gbt", "mlp", "calibrated"]), help="Model to fit and save.")
@click.option("--test-fraction", default=0.2, show_default=True, type=click.FloatRange(0.05, 0.5))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Bundle file (default: the hardware's folder in $HWNAS_HOME).")
def fit_predictor_cmd(hw_name, space_name, workload, data, kind, test_fraction, seed, out):
    """Fit and save a latency predictor for a hardware profile; report its held-out error."""
    from latency.hardware import load_hardware
    from latency.store import find_dataset
    hw = load_hardware(hw_name)
    space = load_space(space_name)
    w = _workload(workload, space.workload)
    path = Path(data) if data else find_dataset(hw.name)
    if path is None:
        raise UserError(f"no latency dataset for {hw.name}; measure one with `nas profile --hardware {hw.name}` "
                        "or pass --data CSV")
    fit_and_save(hw, space, w, path, kind, test_fraction, seed, Path(out) if out else None)


def fit_and_save(hw, space, w: Workload, path: Path, kind: str = "gbt", test_fraction: float = 0.2, seed: int = 0,
                 out: Path | None = None, verbose: bool = True):
    """Fits on the dataset at `path`, reports the held-out error, saves the bundle and its PNG."""
    from datetime import datetime, timezone
    from latency.bundle import save_bundle
    from latency.dataset import read_dataset
    from latency.features import FEATURE_VERSION, feature_names
    from latency.fit import fit_and_report, plot_predictions
    from latency.store import bundle_path
    result = fit_and_report(read_dataset(path), hw, space, w, kind, test_fraction, seed)
    if verbose:
        table = Table("model", "RMSE", "MAPE", "within ±5%", "within ±10%", "Kendall τ", box=None,
                      title=f"{hw.name} / {space.name} / {w}: held-out {len(result.test)} of {result.rows} archs",
                      title_justify="left")
        for name, m in result.metrics.items():
            table.add_row(name, f"{m['rmse_ms']:.3f} ms", f"{m['mape']:.1f}%", f"{m['within_5']:.1%}",
                          f"{m['within_10']:.1%}", f"{m['kendall_tau']:.3f}")
        stdout_console().print(table)
        console.print(f"measurement repeatability: median spread (relative IQR of rounds) "
                      f"{result.repeatability['median_spread']:.1%}, 90th percentile "
                      f"{result.repeatability['p90_spread']:.1%}")
    target = out or bundle_path(hw.name, space.name, w)
    save_bundle(target, result.predictor, feature_names=feature_names(space), feature_version=FEATURE_VERSION,
                hardware=hw.to_dict(), space=space.to_dict(), workload=w.to_dict(),
                source="calibrated" if kind == "calibrated" else "measured", metrics=result.metrics[kind],
                dataset={"rows": result.rows, "file": str(path),
                         "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")})
    png = target.with_suffix(".png")
    plot_predictions(result, kind, png, f"{hw.name} / {space.name} / {w}")
    console.print(f"saved {target} and {png}" + ("" if verbose else
                  f" ({kind}: {result.metrics[kind]['within_10']:.0%} of held-out archs within ±10%, "
                  f"Kendall τ {result.metrics[kind]['kendall_tau']:.2f}; `nas fit-predictor` prints the full report)"))
    return result
