"""A predictor bundle: ONE file holds everything a prediction needs — the learned content, its
feature schema, the hardware profile, the search space and workload the features are computed
under, where the numbers come from, how good they are, and which data they were fitted on. HAT kept
its normalisation constants in a separate YAML; here nothing can drift apart from the weights.

The file is a `torch.save` of plain content (numpy arrays travel as tagged tensors), read back
with `weights_only=True`: loading a bundle never runs code from it.
"""
from __future__ import annotations

import datetime
import io
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from latency.features import FEATURE_VERSION, feature_names as schema_of, featurize
from latency.hardware import Hardware, hardware_from_dict
from latency.predictors import LatencyPredictor
from space import Arch, SearchSpace, Workload, space_from_dict
from space.files import atomic_write_bytes
from space.errors import UserError

BUNDLE_VERSION = 1
SOURCES = ("measured", "calibrated", "analytic")
_ARRAY = "__ndarray__"  # tag of a numpy array stored as a tensor (weights_only reads tensors, not arrays)


@dataclass(frozen=True, eq=False)  # eq/hash over dicts and a model would mislead: compare predictions
class Bundle:
    predictor: LatencyPredictor
    feature_names: tuple[str, ...]
    feature_version: int
    hardware: dict[str, Any]  # Hardware.to_dict()
    space: dict[str, Any]  # SearchSpace.to_dict()
    workload: dict[str, Any]  # Workload.to_dict()
    source: str  # measured | calibrated | analytic
    metrics: dict[str, Any] = field(default_factory=dict)  # latency_metrics on held-out rows
    dataset: dict[str, Any] = field(default_factory=dict)  # rows, file, date
    columns: tuple[int, ...] | None = None  # its feature columns among today's, where today computes more

    @cached_property
    def search_space(self) -> SearchSpace:
        return space_from_dict(self.space, "bundle.space")

    @cached_property
    def hw(self) -> Hardware:
        return hardware_from_dict(self.hardware, "bundle.hardware")

    @cached_property
    def work(self) -> Workload:
        return Workload.from_dict(self.workload, "bundle.workload")

    def features(self, archs: Iterable[Arch]) -> np.ndarray:
        archs = [self.search_space.require(a) for a in archs]  # an arch outside the space encodes wrongly
        if not archs:
            return np.zeros((0, len(self.feature_names)))
        X = featurize(archs, self.search_space, self.work, self.hw)
        return X if self.columns is None else X[:, self.columns]

    def predict(self, archs: Iterable[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """(seconds, relative std), one per arch, on this bundle's hardware and workload."""
        X = self.features(archs)
        return self.predictor.predict(X), self.predictor.predict_std(X)


def _pack(obj: Any, where: str) -> Any:
    """Plain content for weights_only loading: arrays tagged, numpy scalars made Python numbers."""
    if isinstance(obj, np.ndarray):
        if obj.dtype == object or obj.dtype.kind in "USV":
            raise UserError(f"save_bundle: {where} is a {obj.dtype} array; only numeric arrays can be saved")
        return {_ARRAY: torch.from_numpy(np.ascontiguousarray(obj).copy())}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (datetime.date, datetime.time)):  # YAML reads `date: 2025-01-01` as a date
        return obj.isoformat()
    if isinstance(obj, dict):
        return {str(k): _pack(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_pack(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if obj is None or isinstance(obj, (str, int, float, bool, torch.Tensor)):
        return obj
    raise UserError(f"save_bundle: {where} is a {type(obj).__name__}; a bundle holds plain data only")


def _unpack(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_ARRAY}:
            return obj[_ARRAY].numpy()
        return {k: _unpack(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unpack(v) for v in obj)
    return obj


def save_bundle(path: str | Path, predictor: LatencyPredictor, *, feature_names: Iterable[str], feature_version: int,
                hardware: dict[str, Any], space: dict[str, Any], workload: dict[str, Any], source: str,
                metrics: dict[str, Any], dataset: dict[str, Any]) -> Path:
    """Writes the bundle atomically (a killed process leaves the old file or the new one)."""
    names = list(feature_names)
    if source not in SOURCES:
        raise UserError(f"save_bundle: source={source!r}; allowed: {', '.join(SOURCES)}")
    if list(predictor.feature_names) != names:
        raise UserError("save_bundle: the predictor was fitted on other feature columns than feature_names")
    if predictor.fitted is None:
        raise UserError(f"save_bundle: predictor {predictor.name!r} is not fitted; call fit(X, y) first")
    # refuse to write what load_bundle would refuse to read: the metadata must rebuild the features
    hardware_from_dict(hardware, "save_bundle: hardware")
    Workload.from_dict(workload, "save_bundle: workload")
    if feature_version != FEATURE_VERSION or names != schema_of(space_from_dict(space, "save_bundle: space")):
        raise UserError(f"save_bundle: feature_names/feature_version v{feature_version} are not what "
                        f"latency.features computes (v{FEATURE_VERSION}) for this space; refeaturize and refit")
    record = {"bundle_version": BUNDLE_VERSION, "predictor": predictor.state(), "feature_names": names,
              "feature_version": int(feature_version), "hardware": dict(hardware), "space": dict(space),
              "workload": dict(workload), "source": source, "metrics": dict(metrics), "dataset": dict(dataset)}
    buf = io.BytesIO()
    torch.save(_pack(record, "bundle"), buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_bundle(path: str | Path) -> Bundle:
    """Reads and checks a bundle: its format, and that today's features are the ones it was fitted on."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such predictor bundle; fit one with `nas fit-predictor --hardware NAME`")
    try:
        rec = _unpack(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:  # truncated, not a torch file, or holding more than plain data
        raise UserError(f"{path}: not a readable predictor bundle ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:120] if str(e) else 'no detail'}); refit it") from None
    hw = rec.get("hardware") if isinstance(rec, dict) else None
    hw_name = hw.get("name", "NAME") if isinstance(hw, dict) else "NAME"
    refit = f"refit with `nas fit-predictor --hardware {hw_name}`"
    keys = ("bundle_version", "predictor", "feature_names", "feature_version", "hardware", "space", "workload",
            "source", "metrics", "dataset")
    if not isinstance(rec, dict) or any(k not in rec for k in keys):
        raise UserError(f"{path}: not a predictor bundle (missing fields); {refit}")
    if rec["bundle_version"] != BUNDLE_VERSION:
        raise UserError(f"{path}: bundle format v{rec['bundle_version']}, this hwnas reads v{BUNDLE_VERSION}; {refit}")
    if rec["feature_version"] != FEATURE_VERSION:
        raise UserError(f"{path} was fitted with feature schema v{rec['feature_version']} "
                        f"(this hwnas computes v{FEATURE_VERSION}); {refit}")
    space = space_from_dict(rec["space"], f"{path.name}: space")
    names, today = list(rec["feature_names"]), schema_of(space)
    where = {n: i for i, n in enumerate(today)}
    missing = [n for n in names if n not in where]
    if missing:
        raise UserError(f"{path} was fitted on a feature column today's features lack ({missing[0]!r}; schema "
                        f"v{rec['feature_version']}, {len(names)} vs {len(today)} columns); {refit}")
    # Today's features may hold more columns than it was fitted on (an attention type registered
    # since: its indicator and count columns, zero for every arch of the bundle's space): it reads its own.
    columns = None if names == today else tuple(where[n] for n in names)
    try:
        predictor = LatencyPredictor.from_state(rec["predictor"], names)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    except Exception as e:  # a readable file whose predictor part is damaged
        raise UserError(f"{path}: the predictor in this bundle is damaged ({type(e).__name__}); {refit}") from None
    return Bundle(predictor=predictor, feature_names=tuple(names), feature_version=rec["feature_version"],
                  hardware=rec["hardware"], space=rec["space"], workload=rec["workload"], source=rec["source"],
                  metrics=rec["metrics"], dataset=rec["dataset"], columns=columns)
