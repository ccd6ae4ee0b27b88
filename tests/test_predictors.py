"""Latency predictors, their bundle and the metrics, on a synthetic dataset: nothing is timed.

The ground truth is a fixed nonlinear function of the analytic terms and the per-type layer counts,
times 3% lognormal noise: close to what a CPU does (op overhead dominates small models, memory
traffic grows worse than linearly, softmax layers pay extra) without a profiler in the loop.
"""
from __future__ import annotations

import datetime
from dataclasses import fields

import numpy as np
import pytest
import torch

from latency.bundle import BUNDLE_VERSION, load_bundle, save_bundle
from latency.features import FEATURE_VERSION, feature_names, featurize
from latency.hardware import load_hardware
from latency.metrics import latency_metrics
from latency.predictors import PREDICTORS, LatencyPredictor, _export_trees, _tree_predict, make_predictor
from space import UserError, load_space

SPACE = load_space("lm-shakespeare")
HW = load_hardware("xeon-e5-2640v4")
NAMES = feature_names(SPACE)
N, N_TRAIN = 300, 240
SMALL = {"mlp": {"members": 2, "epochs": 40}, "gbt": {"trees": 40}}  # contract tests check behaviour, not accuracy


def _col(X: np.ndarray, name: str) -> np.ndarray:
    return X[:, NAMES.index(name)]


@pytest.fixture(scope="module")
def data() -> dict:
    archs = [SPACE.sample(i) for i in range(N)]
    X = featurize(archs, SPACE, SPACE.workload, HW)
    compute, memory, overhead, total = (_col(X, f"roofline.{k}_s") for k in ("compute", "memory", "overhead", "total"))
    noise = np.exp(np.random.default_rng(0).normal(0.0, 0.03, N))
    truth = (0.6 * overhead ** 0.95 * (1 + 0.08 * _col(X, "decoder.n_softmax"))
             + 3.0 * (total - overhead) * (1 + 0.5 * np.tanh(_col(X, "analytic.bytes") / 1e8))
             + 4e-4 * _col(X, "decoder.n_linear") * _col(X, "decoder.embed") / 128)
    linear = 2.5 * compute + 1.8 * memory + 0.7 * overhead + 2e-3
    return {"archs": archs, "X": X, "y": truth * noise, "linear": linear * noise}


@pytest.fixture(scope="module")
def fitted(data: dict) -> dict[str, LatencyPredictor]:
    """Every registered predictor, fitted the way it is meant to be used."""
    X, y = data["X"], data["y"]
    return {"mlp": make_predictor("mlp", NAMES).fit(X[:N_TRAIN], y[:N_TRAIN]),
            "gbt": make_predictor("gbt", NAMES).fit(X[:N_TRAIN], y[:N_TRAIN]),
            "analytic": make_predictor("analytic", NAMES),
            "calibrated": make_predictor("calibrated", NAMES).fit(X[:20], data["linear"][:20])}


def test_registry_is_covered(fitted: dict) -> None:
    assert set(fitted) == set(PREDICTORS)


# ---- accuracy --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mlp", "gbt"])
def test_learned_predictors_on_held_out_rows(name: str, data: dict, fitted: dict) -> None:
    X, y = data["X"][N_TRAIN:], data["y"][N_TRAIN:]
    m = latency_metrics(y, fitted[name].predict(X))
    assert m["within_10"] >= 0.8 and m["kendall_tau"] >= 0.85, m
    assert m["mape"] < latency_metrics(y, fitted["analytic"].predict(X))["mape"]  # it learned something
    std = fitted[name].predict_std(X)
    assert np.all((std > 0.005) & (std < 0.3))  # near the 3% noise: neither ±0% nor ±50%


def test_calibrated_from_20_samples(data: dict, fitted: dict) -> None:
    X, y = data["X"][N_TRAIN:], data["linear"][N_TRAIN:]
    cal = fitted["calibrated"]
    assert latency_metrics(y, cal.predict(X))["within_10"] >= 0.8
    assert all(c >= 0 for c in cal.coefficients().values())
    assert np.all(cal.predict_std(X) >= 0.02)


def test_calibrated_reproduces_the_roofline_and_ignores_zero_weight(data: dict) -> None:
    X = data["X"]
    y = _col(X, "roofline.total_s").copy()
    y[3] *= 10.0  # a gross outlier (a timing hiccup) the caller has weighted out
    w = np.ones(N)
    w[3] = 0.0
    cal = make_predictor("calibrated", NAMES).fit(X[:10], y[:10], weight=w[:10])
    pred = cal.predict(X[N_TRAIN:])
    np.testing.assert_allclose(pred, _col(X[N_TRAIN:], "roofline.total_s"), rtol=0.01)


def test_analytic_is_the_uncalibrated_roofline(data: dict, fitted: dict) -> None:
    X = data["X"]
    np.testing.assert_array_equal(fitted["analytic"].predict(X), _col(X, "roofline.total_s"))
    assert np.all(fitted["analytic"].predict_std(X) == 0.5)
    assert fitted["analytic"].fit(X, data["y"]).state()["fitted"] == {}


def test_exported_trees_match_scikit_learn(data: dict) -> None:
    from sklearn.ensemble import GradientBoostingRegressor
    X, y = data["X"], np.log(data["y"])
    model = GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0).fit(X, y)
    np.testing.assert_allclose(_tree_predict(_export_trees(model, X[:1]), X), model.predict(X), rtol=0, atol=1e-12)


# ---- the bundle ------------------------------------------------------------------------------------

def _save(path, predictor: LatencyPredictor, source: str = "measured"):
    hardware = {**HW.to_dict(), "measured": {"date": datetime.date(2025, 1, 1)}}  # a date, as YAML reads one
    return save_bundle(path, predictor, feature_names=NAMES, feature_version=FEATURE_VERSION,
                       hardware=hardware, space=SPACE.to_dict(), workload=SPACE.workload.to_dict(),
                       source=source, metrics={"within_10": np.float64(0.9), "n": 60},
                       dataset={"rows": N_TRAIN, "file": "latency.jsonl", "date": "2025-01-01"})


@pytest.mark.parametrize("name", sorted(PREDICTORS))
def test_bundle_round_trip_is_bitwise(name: str, tmp_path, data: dict, fitted: dict) -> None:
    path = _save(tmp_path / f"{name}.pt", fitted[name])
    b = load_bundle(path)
    seconds, std = b.predict(data["archs"][N_TRAIN:])
    X = data["X"][N_TRAIN:]
    assert seconds.tobytes() == fitted[name].predict(X).tobytes()
    assert std.tobytes() == fitted[name].predict_std(X).tobytes()
    assert b.predictor.name == name and b.source == "measured" and b.feature_names == tuple(NAMES)
    assert b.hw.peak == HW.peak and b.hw.measured == {"date": "2025-01-01"} and b.search_space == SPACE and b.metrics == {"within_10": 0.9, "n": 60}
    assert b.dataset["rows"] == N_TRAIN
    assert [len(a) for a in b.predict([])] == [0, 0]


def _tamper(path, **changes) -> None:
    rec = torch.load(path, weights_only=True)
    rec.update(changes)
    torch.save(rec, path)


def test_bundle_schema_mismatch(tmp_path, fitted: dict) -> None:
    path = _save(tmp_path / "b.pt", fitted["calibrated"], "calibrated")
    _tamper(path, feature_version=FEATURE_VERSION + 1)
    with pytest.raises(UserError, match=rf"feature schema v{FEATURE_VERSION + 1}.*nas fit-predictor --hardware "
                                        "xeon-e5-2640v4"):
        load_bundle(path)
    path = _save(tmp_path / "c.pt", fitted["calibrated"], "calibrated")
    _tamper(path, feature_names=["decoder.width"] + NAMES[1:])
    with pytest.raises(UserError, match="a feature column today's features lack \\('decoder.width'"):
        load_bundle(path)
    path = _save(tmp_path / "d.pt", fitted["calibrated"], "calibrated")
    _tamper(path, bundle_version=BUNDLE_VERSION + 1)
    with pytest.raises(UserError, match="bundle format"):
        load_bundle(path)


def test_bundle_bad_files(tmp_path, fitted: dict) -> None:
    with pytest.raises(UserError, match="no such predictor bundle"):
        load_bundle(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="not a readable predictor bundle"):
        load_bundle(tmp_path / "junk.pt")
    path = _save(tmp_path / "cut.pt", fitted["gbt"])
    path.write_bytes(path.read_bytes()[:200])  # a truncated copy
    with pytest.raises(UserError, match="not a readable predictor bundle"):
        load_bundle(path)
    with pytest.raises(UserError, match="source='guessed'"):
        _save(tmp_path / "x.pt", fitted["gbt"], source="guessed")
    with pytest.raises(UserError, match="not in space"):  # an arch of another space would encode wrongly
        load_bundle(_save(tmp_path / "y.pt", fitted["gbt"])).predict([load_space("gpt2-small").sample(0)])


# ---- the registry and the metrics ------------------------------------------------------------------

def test_unknown_predictor_and_option() -> None:
    with pytest.raises(UserError, match="unknown latency predictor 'xgboost'; choose one of: analytic, calibrated, gbt, mlp"):
        make_predictor("xgboost", NAMES)
    with pytest.raises(UserError, match="unknown option 'epoch' for predictor 'mlp'; allowed: hidden"):
        make_predictor("mlp", NAMES, epoch=3)
    with pytest.raises(UserError, match="members=-1"):
        make_predictor("mlp", NAMES, members=-1)
    with pytest.raises(UserError, match="needs the feature column 'roofline.total_s'"):
        make_predictor("gbt", NAMES[:-1])


def test_metrics_on_hand_made_numbers() -> None:
    m = latency_metrics([1.0, 2.0], [1.05, 2.5])
    assert m["within_10"] == 0.5 and m["within_5"] == 0.5  # a 5% miss counts as within 5%
    assert m["mape"] == pytest.approx(15.0) and m["n"] == 2 and m["kendall_tau"] == pytest.approx(1.0)
    assert m["rmse_ms"] == pytest.approx(np.sqrt((0.05 ** 2 + 0.5 ** 2) / 2) * 1e3)
    assert latency_metrics([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])["kendall_tau"] == pytest.approx(-1.0)
    assert np.isnan(latency_metrics([1.0], [1.0])["kendall_tau"])
    with pytest.raises(UserError, match="2 measured vs 1 predicted"):
        latency_metrics([1.0, 2.0], [1.0])
    with pytest.raises(UserError, match="> 0 seconds"):
        latency_metrics([0.0], [1.0])


# ---- the contract every registered predictor keeps -------------------------------------------------

@pytest.fixture(params=sorted(PREDICTORS))
def name(request) -> str:
    return request.param


def _make(name: str, seed: int = 7) -> LatencyPredictor:
    kw = dict(SMALL.get(name, {}))
    if "seed" in {f.name for f in fields(PREDICTORS[name].Config)}:
        kw["seed"] = seed
    return make_predictor(name, NAMES, **kw)


class TestPredictorContract:
    def test_fit_predict(self, name: str, data: dict) -> None:
        X, y = data["X"], data["y"]
        p = _make(name)
        assert p.fit(X[:60], y[:60]) is p and p.name == name
        seconds, std = p.predict(X[60:90]), p.predict_std(X[60:90])
        assert seconds.shape == std.shape == (30,)
        assert np.all(np.isfinite(seconds) & (seconds > 0)) and np.all(np.isfinite(std) & (std >= 0))
        assert p.predict(X[:0]).shape == (0,)

    def test_deterministic_without_touching_global_state(self, name: str, data: dict) -> None:
        X, y = data["X"], data["y"]
        torch_rng, np_rng, threads = torch.get_rng_state(), np.random.get_state()[1].copy(), torch.get_num_threads()
        a, b = _make(name).fit(X[:60], y[:60]), _make(name).fit(X[:60], y[:60])
        assert torch.equal(torch.get_rng_state(), torch_rng) and np.array_equal(np.random.get_state()[1], np_rng)
        assert torch.get_num_threads() == threads
        assert a.predict(X).tobytes() == b.predict(X).tobytes()
        assert a.predict_std(X).tobytes() == b.predict_std(X).tobytes()

    def test_state_round_trip(self, name: str, data: dict) -> None:
        X, y = data["X"], data["y"]
        p = _make(name).fit(X[:60], y[:60])
        q = LatencyPredictor.from_state(p.state(), NAMES)
        assert type(q) is type(p) and q.config == p.config
        assert q.predict(X).tobytes() == p.predict(X).tobytes()

    def test_bad_input_is_a_user_error(self, name: str, data: dict) -> None:
        X, y = data["X"], data["y"]
        p = _make(name)
        with pytest.raises(UserError, match="expected \\(rows"):
            p.fit(X[:10, :-1], y[:10])
        with pytest.raises(UserError, match="latency > 0"):
            p.fit(X[:10], np.zeros(10))
        with pytest.raises(UserError, match="weight"):
            p.fit(X[:10], y[:10], weight=-np.ones(10))
        if name != "analytic":  # the roofline needs no fit; everything else must be fitted first
            with pytest.raises(UserError, match="not fitted"):
                p.predict(X[:3])
