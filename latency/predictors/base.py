"""The interface every latency predictor implements, its registry, and building one by name."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict
from typing import Any, ClassVar, Sequence

import numpy as np

from space.errors import UserError
from space.options import build, check_fields
from space.registry import Registry

TOTAL, COMPUTE, MEMORY, OVERHEAD = "roofline.total_s", "roofline.compute_s", "roofline.memory_s", "roofline.overhead_s"
_TINY = 1e-30  # floor before a log: analytic columns are > 0, but a log of 0 must not poison a fit

PREDICTORS: "Registry[LatencyPredictor]" = Registry("latency predictor")


class LatencyPredictor(ABC):
    """fit(X, y) / predict(X) in seconds / predict_std(X) as a relative std (0.04 = ±4%).
    Subclasses implement _fit (on log seconds), _predict and _predict_std; the base validates."""

    name: ClassVar[str]
    Config: ClassVar[type]  # the frozen dataclass of its hyper-parameters
    needs: ClassVar[tuple[str, ...]] = ()  # feature columns it cannot work without
    learns: ClassVar[bool] = True  # False: usable as built, nothing to fit (the analytic roofline)

    def __init__(self, feature_names: Sequence[str], config: Any = None) -> None:
        self.feature_names = tuple(feature_names)
        self.config = config if config is not None else self.Config()
        self.fitted: dict[str, Any] | None = None  # the learned content; None until fit
        for col in self.needs:
            if col not in self.feature_names:
                raise UserError(f"predictor {self.name!r} needs the feature column {col!r}; "
                                "build X with latency.features.featurize")

    def col(self, name: str) -> int:
        return self.feature_names.index(name)

    # ---- the interface ----------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, weight: Any = None) -> "LatencyPredictor":
        X = self._check_X(X)
        if len(X) == 0:
            raise UserError(f"predictor {self.name!r}: no rows to fit; measure some archs first (`nas profile`)")
        y = np.asarray(y, dtype=np.float64).ravel()
        if y.shape != (len(X),) or not (np.all(np.isfinite(y)) and np.all(y > 0)):
            raise UserError(f"predictor {self.name!r}: y must hold one finite latency > 0 s per row of X "
                            f"({len(X)} rows; got {y.size} values)")
        w = np.ones(len(X)) if weight is None else np.asarray(weight, dtype=np.float64).ravel()
        if w.shape != y.shape or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise UserError(f"predictor {self.name!r}: weight must hold one finite value >= 0 per row, not all 0")
        self.fitted = self._fit(X, np.log(y), w / w.mean())
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Seconds, one per row."""
        return self._predict(self._check_X(X, fitted=True))

    def predict_std(self, X: Any) -> np.ndarray:
        """Relative std per row (a fraction, 0.04 = ±4%); the log-space models give the std of log
        latency, which equals the relative std to first order."""
        return self._predict_std(self._check_X(X, fitted=True))

    def state(self) -> dict[str, Any]:
        """Plain content only (str, numbers, lists, dicts, numpy arrays, torch state dicts)."""
        return {"name": self.name, "config": asdict(self.config), "feature_names": list(self.feature_names),
                "fitted": self.fitted}

    @classmethod
    def from_state(cls, state: dict[str, Any], feature_names: Sequence[str]) -> "LatencyPredictor":
        """Rebuilds exactly what `state()` saved; called on the base class, it dispatches on the name."""
        name = state.get("name") if isinstance(state, dict) else None
        klass = (PREDICTORS.get(name) if name in PREDICTORS else None) if cls is LatencyPredictor else cls
        if klass is None or klass.name != name:
            raise UserError(f"predictor state names {name!r}, expected one of {', '.join(PREDICTORS.names())}")
        if list(state["feature_names"]) != list(feature_names):
            raise UserError(f"predictor {name!r} was fitted on other feature columns; refit it")
        p = klass(feature_names, make_config(name, **state["config"]))
        p.fitted = p._load(state["fitted"]) if state["fitted"] is not None else None
        return p

    # ---- what an implementation provides ----------------------------------------------------------
    @abstractmethod
    def _fit(self, X: np.ndarray, log_y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
        """The learned content, from rows X, log seconds and weights with mean 1."""

    @abstractmethod
    def _predict(self, X: np.ndarray) -> np.ndarray:
        """Seconds (the log-space models exponentiate here, the linear ones need not round-trip)."""

    @abstractmethod
    def _predict_std(self, X: np.ndarray) -> np.ndarray: ...

    def _load(self, fitted: dict[str, Any]) -> dict[str, Any]:
        return fitted

    # ---- shared helpers ---------------------------------------------------------------------------
    def _check_X(self, X: Any, fitted: bool = False) -> np.ndarray:
        if fitted and self.fitted is None:
            raise UserError(f"predictor {self.name!r} is not fitted; call fit(X, y) first")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise UserError(f"predictor {self.name!r}: X has shape {X.shape}, expected (rows, "
                            f"{len(self.feature_names)}); build it with latency.features.featurize")
        if not np.all(np.isfinite(X)):
            raise UserError(f"predictor {self.name!r}: X holds NaN or inf; check the feature rows")
        return X

    def _offset(self, X: np.ndarray, residual: bool) -> np.ndarray:
        """log of the roofline estimate when learning the residual over it, else 0."""
        return np.log(np.maximum(X[:, self.col(TOTAL)], _TINY)) if residual else np.zeros(len(X))


# scikit-learn, SciPy and torch are imported where a predictor fits or predicts: choosing one by
# name (the CLI's options) and loading a bundle must stay fast.

# ---- the registry ----------------------------------------------------------------------------------

def make_config(name: str, **kw: Any) -> Any:
    """A predictor's Config from options, each checked against its field (space.options)."""
    config = build(PREDICTORS.get(name).Config, kw, f"predictor {name!r}")
    check_fields(config, label=lambda key: f"predictor {name!r}: {key}")
    return config


def make_predictor(name: str, feature_names: Sequence[str], **kw: Any) -> LatencyPredictor:
    """A fresh predictor by registry name; `kw` are fields of its Config (e.g. seed=1, members=3)."""
    config = make_config(name, **kw)  # first: an unknown name or option fails here, with the allowed ones
    return PREDICTORS.create(name, feature_names, config)
