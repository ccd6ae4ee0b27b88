"""Latency predictors: a feature matrix (latency.features.featurize) -> seconds.

Every learned model fits log(latency): relative error is what matters, and latencies span orders of
magnitude. `mlp` and `gbt` learn by default the *residual* over the analytic roofline estimate,
log(y / roofline.total_s): the roofline carries the physics (and extrapolates), the model learns the
correction. `calibrated` rescales the roofline's terms from a handful of measurements (a new device
from <= 20 samples); `analytic` is the roofline itself. Hyper-parameters are one frozen dataclass per
predictor; the learned content is a plain dict (`state()`), so a bundle can rebuild it exactly.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np

from latency.features import ANALYTIC
from space.errors import UserError
from space.options import build, check_fields, fraction, positive
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

# ---- analytic: the roofline itself ----------------------------------------------------------------

@dataclass(frozen=True)
class AnalyticConfig:
    rel_std: float = 0.5  # "±50%, uncalibrated": spec-sheet peaks and a guessed op overhead


@PREDICTORS.register
class AnalyticPredictor(LatencyPredictor):
    name, Config, needs, learns = "analytic", AnalyticConfig, (TOTAL,), False

    def __init__(self, feature_names: Sequence[str], config: Any = None) -> None:
        super().__init__(feature_names, config)
        self.fitted = {}  # nothing to learn: usable as built

    def _fit(self, X: np.ndarray, log_y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
        return {}  # checks its input like any predictor, learns nothing: fitting it would make it `calibrated`

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return X[:, self.col(TOTAL)].copy()

    def _predict_std(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.config.rel_std)


# ---- calibrated: the roofline's terms rescaled from a few measurements ----------------------------

@dataclass(frozen=True)
class CalibratedConfig:
    intercept: bool = True  # a fixed per-call cost (Python, allocator) the roofline does not count
    std_floor: float = 0.02  # a fit to a handful of rows is never better than the timing noise


@PREDICTORS.register
class CalibratedPredictor(LatencyPredictor):
    """latency ≈ a·compute + b·memory + c·bound + d·overhead + e, every coefficient >= 0 (NNLS).
    bound = total - overhead (the per-invocation max(compute, memory)) lets (c, d) = (1, 1) reproduce
    the uncalibrated roofline exactly; the compute/memory sums let a device lean to either side."""
    name, Config, needs = "calibrated", CalibratedConfig, (COMPUTE, MEMORY, OVERHEAD, TOTAL)
    TERMS = ("compute", "memory", "bound", "overhead", "intercept")

    def _design(self, X: np.ndarray) -> np.ndarray:
        c, m, o, t = (X[:, self.col(k)] for k in (COMPUTE, MEMORY, OVERHEAD, TOTAL))
        cols = [c, m, np.maximum(t - o, 0.0), o] + ([np.ones(len(X))] if self.config.intercept else [])
        return np.stack(cols, axis=1)  # (N, terms) seconds

    def _fit(self, X: np.ndarray, log_y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
        y, A = np.exp(log_y), self._design(X)
        scale = np.maximum(A.max(axis=0), _TINY)  # columns span 1e-6..1 s: rescale for a well-posed NNLS
        rw = np.sqrt(w) / y  # dividing each row by y: least squares on the *relative* error
        from scipy.optimize import nnls
        coef, _ = nnls(A / scale * rw[:, None], np.sqrt(w))
        coef = coef / scale
        if not np.any(coef > 0):
            raise UserError("calibrated predictor: the fit found no positive coefficient; check the measured rows")
        rel = A @ coef / y - 1.0
        dof = max(len(y) - int(np.sum(coef > 0)), 1)  # residuals of an exact fit say nothing: count the dof
        std = math.sqrt(float(np.sum(w * rel ** 2)) / dof)
        return {"coef": coef, "rel_std": max(std, self.config.std_floor)}

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._design(X) @ np.asarray(self.fitted["coef"])

    def _predict_std(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), float(self.fitted["rel_std"]))

    def coefficients(self) -> dict[str, float]:
        return dict(zip(self.TERMS, map(float, self.fitted["coef"])))


# ---- gbt: gradient-boosted trees, exported to plain node arrays -----------------------------------

@dataclass(frozen=True)
class GBTConfig:
    trees: int = 300
    learning_rate: float = field(default=0.05, metadata=positive())
    depth: int = 4
    min_leaf: int = 3
    subsample: float = field(default=0.8, metadata=fraction(low_open=True))
    folds: int = 5  # out-of-fold residuals give predict_std
    residual: bool = True
    seed: int = 0


@PREDICTORS.register
class GBTPredictor(LatencyPredictor):
    """scikit-learn's GradientBoostingRegressor, its trees then copied into flat arrays through the
    public `tree_` attributes: the state is plain numpy, independent of the scikit-learn version."""
    name, Config, needs = "gbt", GBTConfig, (TOTAL,)

    def _model(self, n: int) -> GradientBoostingRegressor:
        from sklearn.ensemble import GradientBoostingRegressor
        c = self.config
        return GradientBoostingRegressor(n_estimators=c.trees, learning_rate=c.learning_rate, max_depth=c.depth,
                                         min_samples_leaf=min(c.min_leaf, max(n // 2, 1)), subsample=c.subsample,
                                         random_state=c.seed)

    def _fit(self, X: np.ndarray, log_y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
        t = log_y - self._offset(X, self.config.residual)
        fitted = _export_trees(self._model(len(X)).fit(X, t, sample_weight=w), X[:1])
        folds = min(self.config.folds, len(X))
        if folds < 2:
            return {**fitted, "rel_std": 0.5}  # one row: nothing to estimate a spread from
        oof = np.empty(len(X))
        from sklearn.model_selection import KFold
        for tr, te in KFold(folds, shuffle=True, random_state=self.config.seed).split(X):
            part = _export_trees(self._model(len(tr)).fit(X[tr], t[tr], sample_weight=w[tr]), X[:1])
            oof[te] = _tree_predict(part, X[te])
        return {**fitted, "rel_std": math.sqrt(float(np.average((oof - t) ** 2, weights=w)))}

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return np.exp(_tree_predict(self.fitted, X) + self._offset(X, self.config.residual))

    def _predict_std(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), float(self.fitted["rel_std"]))


def _export_trees(model: GradientBoostingRegressor, x0: np.ndarray) -> dict[str, Any]:
    """All trees in one node table. A leaf points to itself with threshold +inf, so a fixed number of
    steps (the depth) walks every tree; leaf values are pre-multiplied by the learning rate."""
    left, right, feat, thr, val, roots = [], [], [], [], [], []
    base = 0
    for est in model.estimators_[:, 0]:
        tr = est.tree_
        leaf = tr.children_left < 0
        own = np.arange(tr.node_count) + base
        left.append(np.where(leaf, own, tr.children_left + base))
        right.append(np.where(leaf, own, tr.children_right + base))
        feat.append(np.where(leaf, 0, tr.feature))
        thr.append(np.where(leaf, np.inf, tr.threshold))
        val.append(tr.value[:, 0, 0] * model.learning_rate)
        roots.append(base)
        base += tr.node_count
    cat = np.concatenate
    return {"baseline": float(model.init_.predict(x0)[0]), "roots": np.asarray(roots, dtype=np.int64),
            "left": cat(left).astype(np.int64), "right": cat(right).astype(np.int64),
            "feature": cat(feat).astype(np.int64), "threshold": cat(thr).astype(np.float64),
            "value": cat(val).astype(np.float64), "depth": int(model.max_depth)}


def _tree_predict(f: dict[str, Any], X: np.ndarray) -> np.ndarray:
    # scikit-learn's trees compare float32 features with float64 thresholds: do exactly the same
    Xf = X.astype(np.float32).astype(np.float64)
    left, right, feat, thr = (np.asarray(f[k]) for k in ("left", "right", "feature", "threshold"))
    node = np.repeat(np.asarray(f["roots"])[None, :], len(X), axis=0)  # (N, trees)
    rows = np.arange(len(X))[:, None]
    for _ in range(int(f["depth"])):
        node = np.where(Xf[rows, feat[node]] <= thr[node], left[node], right[node])
    return f["baseline"] + np.asarray(f["value"])[node].sum(axis=1)


# ---- mlp: an ensemble of small MLPs --------------------------------------------------------------

@dataclass(frozen=True)
class MLPConfig:
    hidden: int = 128
    layers: int = 3
    members: int = 5  # the ensemble's spread is the model's uncertainty
    epochs: int = 300
    patience: int = 30  # epochs without a better validation loss before stopping
    batch: int = 256
    lr: float = field(default=2e-3, metadata=positive())
    weight_decay: float = 1e-4
    val_fraction: float = field(default=0.1, metadata=fraction(high_open=True))
    residual: bool = True
    seed: int = 0


@contextmanager
def _one_thread() -> Iterator[None]:
    """Matmuls this small gain nothing from threads, and beside a busy job (a profiler, a training
    run) torch's spinning threads make a step 20x slower: one thread, restored afterwards."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@PREDICTORS.register
class MLPPredictor(LatencyPredictor):
    name, Config, needs = "mlp", MLPConfig, (TOTAL,)

    def _inputs(self, X: np.ndarray) -> np.ndarray:
        # params, FLOPs, bytes, seconds span decades: the net sees their logs
        Z = X.copy()
        idx = [i for i, n in enumerate(self.feature_names) if n in ANALYTIC]
        Z[:, idx] = np.log(np.maximum(Z[:, idx], _TINY))
        return Z

    def _net(self, seed: int) -> nn.Sequential:
        import torch
        from torch import nn
        c, width, mods = self.config, len(self.feature_names), []
        with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the global RNG as it was
            torch.manual_seed(seed)
            for i in range(c.layers):
                mods += [nn.Linear(width if i == 0 else c.hidden, c.hidden), nn.GELU()]
            return nn.Sequential(*mods, nn.Linear(c.hidden, 1))

    def _fit(self, X: np.ndarray, log_y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
        Z, t = self._inputs(X), log_y - self._offset(X, self.config.residual)
        x_mean, x_std = Z.mean(axis=0), Z.std(axis=0)
        x_std[x_std < 1e-12] = 1.0  # constant columns (types this space lacks) stay 0 after scaling
        y_mean, y_std = float(t.mean()), max(float(t.std()), 1e-12)
        import torch
        Zt = torch.from_numpy((Z - x_mean) / x_std).float()  # (N, F)
        tt = torch.from_numpy((t - y_mean) / y_std).float()  # (N,)
        wt = torch.from_numpy(w).float()
        members, val_rmse = [], []
        for k in range(self.config.members):
            seed = int(np.random.SeedSequence([self.config.seed, k]).generate_state(1)[0])
            with _one_thread():
                net, rmse = self._train(Zt, tt, wt, seed)
            members.append({n: p.detach().clone() for n, p in net.state_dict().items()})
            val_rmse.append(rmse * y_std)
        fitted = {"x_mean": x_mean, "x_std": x_std, "y_mean": y_mean, "y_std": y_std, "members": members,
                  "val_rmse": val_rmse}
        return self._load(fitted)

    def _train(self, Z: torch.Tensor, t: torch.Tensor, w: torch.Tensor, seed: int) -> tuple[nn.Module, float]:
        import torch
        c, n = self.config, len(t)
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(n, generator=g)
        n_val = int(round(n * c.val_fraction)) if n >= 10 else 0  # each member holds out its own rows
        val, tr = perm[:n_val], perm[n_val:]
        net = self._net(seed)
        opt = torch.optim.AdamW(net.parameters(), lr=c.lr, weight_decay=c.weight_decay)

        def loss_of(idx: torch.Tensor) -> torch.Tensor:
            return (w[idx] * (net(Z[idx]).squeeze(-1) - t[idx]) ** 2).sum() / w[idx].sum().clamp_min(1e-12)

        best, best_loss, bad = None, math.inf, 0
        for _ in range(c.epochs):
            order = tr[torch.randperm(len(tr), generator=g)]
            for i in range(0, len(order), c.batch):
                loss = loss_of(order[i:i + c.batch])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if n_val:
                with torch.no_grad():
                    v = float(loss_of(val))
                if v < best_loss:
                    best, best_loss, bad = {k: p.clone() for k, p in net.state_dict().items()}, v, 0
                elif (bad := bad + 1) >= c.patience:
                    break
        if best is not None:
            net.load_state_dict(best)
        else:  # too few rows to hold any out: the training loss is the only estimate there is
            with torch.no_grad():
                best_loss = float(loss_of(tr))
        return net, math.sqrt(best_loss)

    def _load(self, fitted: dict[str, Any]) -> dict[str, Any]:
        self._nets = []
        for sd in fitted["members"]:
            net = self._net(0)  # its init is overwritten at once
            net.load_state_dict(sd)
            self._nets.append(net.eval())
        return fitted

    def _member_logs(self, X: np.ndarray) -> np.ndarray:
        import torch
        f = self.fitted
        Z = torch.from_numpy((self._inputs(X) - np.asarray(f["x_mean"])) / np.asarray(f["x_std"])).float()
        with torch.no_grad(), _one_thread():
            out = torch.stack([net(Z).squeeze(-1) for net in self._nets]).double().numpy()  # (members, N)
        return out * f["y_std"] + f["y_mean"] + self._offset(X, self.config.residual)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return np.exp(self._member_logs(X).mean(axis=0))

    def _predict_std(self, X: np.ndarray) -> np.ndarray:
        # the members' spread (what the model does not know) plus their held-out error (what it cannot
        # know: timing noise), so a confident ensemble is not read as a ±0% prediction
        spread = self._member_logs(X).std(axis=0)
        noise = float(np.median(self.fitted["val_rmse"]))
        return np.sqrt(spread ** 2 + noise ** 2)


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
