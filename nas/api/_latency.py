"""The latency stage of the API: profile a device, fit a predictor, predict, look at hardware."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from nas.api._common import as_archs, as_hardware, as_space, as_workload
from nas.api.progress import Progress, as_progress
from space import Arch, SearchSpace, Workload
from space.errors import UserError


@dataclass(frozen=True)
class PredictorReport:
    """A fitted, saved predictor, how good it is on held-out archs, and whether it answers now."""

    path: Path  # the bundle
    plot: Path  # predicted vs measured PNG
    kind: str  # gbt | mlp | calibrated
    rows: int  # measured archs it was fitted on
    test_rows: int
    metrics: dict[str, dict[str, float]]  # per model on the held-out rows: rmse_ms, mape, within_5, within_10, kendall_tau
    repeatability: dict[str, float]  # the measurement's own noise
    answers: bool = True  # whether it now answers for this hardware, space and workload
    verdict: str = ""  # why it does, or why the previous one still does


@dataclass(frozen=True)
class ProfileResult:
    dataset: Path
    added: int  # archs measured by this call
    rows: int  # rows for this hardware and workload in the dataset
    median_s: float
    median_spread: float
    predictor: PredictorReport | None  # fitted when the dataset holds enough archs of the space


MIN_ROWS_FOR_PREDICTOR = 30


def profile(hardware: str | Any, *, space: str | Path | SearchSpace = "lm-shakespeare", samples: int = 200,
            workload: str | Workload | None = None, out: str | Path | None = None, seed: int = 0, group: int = 8,
            rounds: int = 5, max_spread: float = 0.05, threads: int | None = None, ray_address: str | None = None,
            backend: str = "torch", progress: Progress | bool = True) -> ProfileResult:
    """Times `samples` archs of `space` on the device of `hardware` (here, or on a Ray node) and
    appends them to a resumable dataset: yours in $HWNAS_HOME by default, or `out`.

    With 30 archs or more a candidate predictor is fitted, on the new measurements merged with the
    data the current predictor was fitted on, and it takes over only if its held-out error on the
    new archs is lower than the current predictor's. A profile written to `out` never changes what
    answers: its predictor is saved beside the file."""
    from latency.dataset import read_dataset
    from latency.profile import check_device, profile as run_profile
    from latency.protocol import TimingProtocol
    from latency.protocol import BACKENDS
    from latency.store import dataset_path
    hw, space = as_hardware(hardware), as_space(space)
    w = as_workload(workload, space)
    timed = space.restricted(hw.precisions)  # archs at the precisions this device runs
    protocol = TimingProtocol(rounds=rounds, max_spread=max_spread)
    if samples < 1 or group < 1:
        raise UserError("profile: samples and group must be at least 1")
    if backend not in BACKENDS:
        raise UserError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if ray_address and backend != "torch":
        raise UserError("--backend onnxruntime runs locally only; drop --ray-address")
    from space import analytic_cost
    analytic_cost(space.largest(), w)  # a workload the space's models cannot run fails here, not mid-profile
    threads = threads or hw.threads
    path = Path(out) if out else dataset_path(hw.name)
    if path.exists():
        read_dataset(path)  # an existing file must be a dataset before we append to it
    run_group = None
    if ray_address:
        from nas.ray_adapter import ray_group_runner
        run_group = ray_group_runner(hw, ray_address)
    else:
        check_device(hw)
    p = as_progress(progress)
    p.note(f"profiling {samples} archs of {space.name} on {hw.name} ({hw.device}), workload {w}, "
           f"{rounds} interleaved rounds in groups of {group}; dataset {path}")
    from latency.model import latency_model, other_cpu
    other = "" if ray_address else other_cpu(latency_model(hw, space, w))
    if other:
        p.note(f"{other}: these rows describe this machine" + (
            "" if out else f", and join {hw.name}'s data; to keep this machine apart, profile a copy of "
                           f"{hw.name}'s YAML under a name of its own with this CPU's numbers"))
    with p.task("profile", samples, unit="arch") as bar:
        added = run_profile(timed, hw, w, samples, path, seed=seed, protocol=protocol, group=group, threads=threads,
                            run_group=run_group, backend=backend,
                            progress=lambda n, total, info: bar.update(samples - total + n, info))
    df = read_dataset(path)
    mine = df[(df.hardware == hw.name) & (df.workload == str(w))]
    report = None
    if len(mine[mine.space == space.name]) >= MIN_ROWS_FOR_PREDICTOR:
        report = fit_predictor(hw, space=space, workload=w, data=path, progress=p,
                               out=_beside(path, space, w) if out else None, merge=out is None)
    else:
        p.note(f"{hw.name} keeps its current latency model until {MIN_ROWS_FOR_PREDICTOR} archs are measured "
               f"(then, or with `nas fit-predictor`, a candidate predictor is fitted and compared)")
    return ProfileResult(path, added, len(mine), float(mine.median_s.median()), float(mine.spread.median()), report)


def _beside(path: Path, space: SearchSpace, w: Workload) -> Path:
    from latency.store import bundle_name
    return path.with_name(f"{path.stem}.{bundle_name(space.name, w)}")


def fit_predictor(hardware: str | Any, *, space: str | Path | SearchSpace = "lm-shakespeare",
                  workload: str | Workload | None = None, data: str | Path | None = None, predictor: str = "gbt",
                  test_fraction: float = 0.2, seed: int = 0, out: str | Path | None = None, merge: bool = True,
                  force: bool = False, progress: Progress | bool = True) -> PredictorReport:
    """Fits a latency predictor on measured data, reports its held-out error beside FLOPs alone,
    the analytic model, the measurement's own noise and the predictor that answers today, and saves it.

    Replacing: with no `out`, the new predictor is a candidate. Its data are merged with the data
    the current predictor was fitted on (same hardware, space and workload; the reference arch
    carries both to one scale), the held-out archs are drawn from the new data only, and it takes
    over (is saved where predictions are read) only when its held-out error (MAPE) is lower than the
    current one's there, or with `force`. Otherwise it is saved beside as `...-candidate.pt` and the
    report says which one answers and why. With `out`, it is saved there and answers nothing."""
    import pandas as pd

    from latency.bundle import load_bundle, save_bundle
    from latency.dataset import read_dataset
    from latency.features import FEATURE_VERSION, feature_names
    from latency.fit import CURRENT, fit_and_report, plot_predictions
    from latency.predictors import PREDICTORS
    from latency.store import bundle_path, find_bundle, find_dataset, shipped_root
    hw, space = as_hardware(hardware), as_space(space)
    w = as_workload(workload, space)
    if predictor not in learned_predictors():
        PREDICTORS.get(predictor)  # an unknown name: the registry's message
        raise UserError(f"--predictor {predictor}: nothing to fit; choose one of {', '.join(learned_predictors())}")
    if not 0.05 <= test_fraction <= 0.5:
        raise UserError(f"--test-fraction {test_fraction}: must be in [0.05, 0.5]")
    path = Path(data) if data else find_dataset(hw.name)
    if path is None:
        raise UserError(f"no latency dataset for {hw.name}; measure one with `nas profile --hardware {hw.name}` "
                        "or pass --data CSV")
    df = read_dataset(path)
    current_path = find_bundle(hw.name, space.name, w) if out is None else None
    current = load_bundle(current_path) if current_path else None
    new_ids, refit = None, False
    mine_rows = df[(df.hardware == hw.name) & (df.space == space.name) & (df.workload == str(w))]
    base = _training_data(current_path, current, hw.name)
    if merge and base is not None and base.resolve() != path.resolve():
        old = read_dataset(base)  # the current predictor's own data, merged with the new measurements ...
        old = old[(old.hardware == hw.name) & (old.space == space.name) & (old.workload == str(w))]
        new_ids = set(mine_rows.arch_id)
        if _compatible(old, mine_rows):  # ... when both were timed beside the same reference arch, alike
            df = pd.concat([old[~old.arch_id.isin(new_ids)], df], ignore_index=True)
    elif current is not None and base is not None:  # the same file, grown: the rows after those it was fitted on
        new_ids = set(mine_rows.arch_id.iloc[int(current.dataset.get("rows", len(mine_rows))):])
        if not new_ids and base.resolve() == path.resolve():
            # nothing it has not seen: held-out archs would be its own training rows, no fair comparison
            current, new_ids, refit = None, None, True
        new_ids = new_ids or None
    result = fit_and_report(df, hw, space, w, predictor, test_fraction, seed, current=current, test_among=new_ids)
    mine, theirs = result.metrics[predictor], result.metrics.get(CURRENT)
    if out is not None:
        target, answers = Path(out), False
        verdict = f"saved to {target}; it answers nothing by itself (pass it with `nas fit-predictor --data {path}`)"
    elif theirs is None or force or mine["mape"] < theirs["mape"]:
        target, answers = bundle_path(hw.name, space.name, w), True
        verdict = ("it now answers for " + hw.name + (" (forced over the previous one)" if force and theirs else
                   f": held-out error {mine['mape']:.1f}% against {theirs['mape']:.1f}% for the previous one"
                   if theirs else ": a refit on the rows the previous one was fitted on (no new measurements to "
                   "compare them on)" if refit else ": no measured predictor answered before"))
    else:
        target, answers = bundle_path(hw.name, space.name, w).with_name(
            bundle_path(hw.name, space.name, w).stem + "-candidate.pt"), False
        where = "the shipped" if str(current_path).startswith(str(shipped_root())) else "your"
        verdict = (f"{where} predictor keeps answering: on the {len(result.test)} held-out new archs its error is "
                   f"{theirs['mape']:.1f}% ({theirs['within_10']:.0%} within ±10%) against {mine['mape']:.1f}% "
                   f"({mine['within_10']:.0%}) for the new one, fitted on {result.rows} rows; the new one is kept "
                   f"beside as {target.name} (`nas fit-predictor --force` makes it answer)")
    import datetime as _dt
    from latency.dataset import reference_scale
    from latency.profile import reference_arch
    ref = reference_arch(space)
    rows = df[(df.hardware == hw.name) & (df.space == space.name) & (df.workload == str(w))]
    dataset = {"rows": result.rows, "file": str(path.resolve()), "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
               "ref_id": ref.id, "ref_s": reference_scale(rows, ref.id),
               "cpu_model": _mode(rows.cpu_model), "device_name": _mode(rows.device_name), "threads": _mode(rows.threads)}
    save_bundle(target, result.predictor, feature_names=feature_names(space), feature_version=FEATURE_VERSION,
                hardware=hw.to_dict(), space=space.to_dict(), workload=w.to_dict(),
                source="calibrated" if predictor == "calibrated" else "measured", metrics=mine, dataset=dataset)
    png = target.with_suffix(".png")
    plot_predictions(result, predictor, png, f"{hw.name} / {space.name} / {w}")
    as_progress(progress).note(f"fitted {predictor} on {result.rows} archs: {mine['within_10']:.0%} of held-out archs "
                               f"within ±10%, Kendall τ {mine['kendall_tau']:.2f}; {verdict}")
    return PredictorReport(target, png, predictor, result.rows, len(result.test), result.metrics, result.repeatability,
                           answers, verdict)


def _mode(column) -> Any:
    """The most common value of a dataset column (None if it has none): what the data were timed on."""
    m = column.dropna().mode()
    if m.empty:
        return None
    v = m.iloc[0]
    return int(v) if isinstance(v, float) and v.is_integer() else (v.item() if hasattr(v, "item") else str(v))


def _compatible(old, new) -> bool:
    """Rows of two datasets go on one scale when both were timed beside the same reference arch, on
    the same kind of device with the same thread count: the ratio to the reference cancels the
    machine's speed (its drift, or another machine of the same kind)."""
    if old.empty or new.empty or new.ref_ratio.isna().any() or old.ref_ratio.isna().all():
        return False
    return (set(new.ref_id) <= set(old.ref_id) and set(new.device) == set(old.device)
            and set(new.threads.dropna()) == set(old.threads.dropna()))


def _training_data(bundle_path: Path | None, bundle: Any, hardware: str) -> Path | None:
    """The dataset a predictor was fitted on (a shipped one's is shipped beside it)."""
    from latency.store import shipped_root
    if bundle is None:
        return None
    if str(bundle_path).startswith(str(shipped_root())):
        path = shipped_root() / hardware / "latency.csv"
    else:
        path = Path(bundle.dataset.get("file", ""))
    return path if path.is_file() else None


def learned_predictors() -> list[str]:
    """Registered predictors that learn from measurements (the analytic roofline does not)."""
    from latency.predictors import PREDICTORS
    return [name for name, cls in PREDICTORS.items() if getattr(cls, "learns", True)]


@dataclass(frozen=True)
class Prediction:
    arch: Arch
    seconds: float  # point prediction
    rel_std: float  # the predictor's relative std (0.04 = ±4%)
    source: str  # measured | calibrated | kernels | analytic
    prefill_s: float | None = None  # a generation workload: time to first token (the point split by the
    decode_per_token_s: float | None = None  # model's share of the first call), then per token
    runtime: str = "eager"  # eager | cuda-graphs: what the latency is for


def predict(hardware: str | Any, archs: str | Path | Arch | Sequence[Arch], *,
            space: str | Path | SearchSpace | None = None, workload: str | Workload | None = None,
            runtime: str | None = None) -> list[Prediction]:
    """Predicted latency of archs on a hardware profile (for `runtime`: eager | cuda-graphs, default
    the profile's), with its uncertainty and source."""
    from latency.model import latency_model, space_for
    archs = as_archs(archs)
    if not archs:
        raise UserError("predict: no archs given")
    hw = as_hardware(hardware).with_runtime(runtime)
    space = as_space(space) if space is not None else space_for(archs[0])
    w = as_workload(workload, space)
    from space.cost import check_workload
    for a in archs:
        check_workload(a, w)  # an ArchError (a UserError): one line
    model = latency_model(hw, space, w)
    seconds, rel = model.predict(archs)
    phases = model.phases(archs, seconds)
    from latency.gpu import COVERED

    def source(a: Arch) -> str:  # a precision the kernel tables do not time (int8) falls back to the roofline
        return "analytic" if model.gpu is not None and a.precision not in COVERED else model.source
    return [Prediction(a, float(s), float(r), source(a), *(ph or (None, None)), runtime=hw.runtime)
            for a, s, r, ph in zip(archs, seconds, rel, phases)]


@dataclass(frozen=True)
class HardwareInfo:
    hardware: Any  # latency.hardware.Hardware
    predictor: str  # the latency model that answers for the space, described


def hardware(name: str | None = None, *, space: str | Path | SearchSpace = "lm-shakespeare") -> list[HardwareInfo]:
    """Every shipped hardware profile (or the one named) with the latency model that answers for `space`."""
    from latency.hardware import builtin_hardware
    from latency.model import predictor_status
    space = as_space(space)
    names = [name] if name else builtin_hardware()
    out = []
    for n in names:
        hw = as_hardware(n)
        out.append(HardwareInfo(hw, predictor_status(hw, space, space.workload)))
    return out


def latency_function(hw, space: SearchSpace, workload: Workload):
    """(archs -> predicted seconds, the model): what a search calls for every candidate."""
    from latency.model import latency_model
    model = latency_model(hw, space, workload)

    def latency(archs: list[Arch]) -> list[float]:
        return [float(s) for s in model.predict(archs)[0]]
    return latency, model
