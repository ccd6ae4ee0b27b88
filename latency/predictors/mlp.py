"""An ensemble of small MLPs over the features."""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from latency.features import ANALYTIC
from latency.predictors.base import PREDICTORS, TOTAL, _TINY, LatencyPredictor
from space.options import fraction, positive

if TYPE_CHECKING:  # torch is imported where a network is built: loading a tree predictor stays light
    import torch
    from torch import nn


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
