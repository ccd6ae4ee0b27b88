"""The Python API and what it stands on: docs/api.md runs as written; records round-trip and refuse
what they cannot read; loading never runs code from a file; one registry shape; no library module
imports the command line; every bad search argument is refused before any training."""
from __future__ import annotations

import ast
import json
import pickle
import re
import time
from pathlib import Path

import pytest

from nas import api
from space import Workload
from space.errors import UserError
from space.record import RecordError
from space.registry import Registry
from supernet.card import ModelCard, OnnxSummary, RetrainSummary
from supernet.checkpoint import SupernetRecord, load_supernet, read_checkpoint
from supernet.config import TrainConfig
from tests.conftest import run_nas

ROOT = Path(__file__).resolve().parents[1]


# ---- docs/api.md, executed ----------------------------------------------------------------------

def test_api_walkthrough_runs_as_documented(tmp_path, monkeypatch, capsys) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), flags=re.S)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HWNAS_HOME", str(tmp_path / "home"))
    scope: dict = {}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), scope)  # noqa: S102  (our own documentation)
    out = capsys.readouterr().out
    assert "refused at once: no arch of tiny-lm is predicted within 1 us" in out
    assert (tmp_path / "model" / "config.json").is_file() and (tmp_path / "run" / "run.json").is_file()
    assert "archs reused from the 5 ms search" in out
    assert not (tmp_path / "home" / "hardware").exists()  # a profile written to --out leaves the user's store alone
    assert list((tmp_path / "home" / "scores").glob("*.jsonl"))  # what the searches scored is kept


# ---- typed records ------------------------------------------------------------------------------

def _card(tiny_spaces) -> ModelCard:
    return ModelCard(arch=tiny_spaces["decoder"].largest(), params=123, hardware="a100", latency_s=0.01,
                     workload=Workload(1, 8, 2),
                     retrain=RetrainSummary(mode="finetune", steps=3, val_loss=1.5, measured_s=0.002),
                     onnx=OnnxSummary(file="model.onnx", precision="fp32", length=8, max_abs_diff=1e-6))


def test_records_round_trip(tmp_path, tiny_spaces) -> None:
    card = _card(tiny_spaces)
    assert ModelCard.read(card.write(tmp_path / "c.json")) == card
    rec = SupernetRecord(space=tiny_spaces["decoder"].to_dict(), train=TrainConfig(steps=3), task="lm", data=None,
                         tokenizer={"type": "byte"}, step=2, log=({"step": 2, "loss": 1.0},))
    assert SupernetRecord.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec
    run = api.SearchRun(hardware="a100", space="x", space_def={}, workload=Workload(1, 8, 0), latency_budget_s=0.02,
                        latency_source="analytic", strategy="evolution", seed=0, iterations=3, supernet="/s")
    assert api.SearchRun.read(run.write(tmp_path / "run.json")) == run


@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(colour="red"), "unknown key 'colour'"),
    (lambda d: d.pop("arch"), "missing key 'arch'"),
    (lambda d: d.update(version=99), "version 99 was written by a newer hwnas"),
    (lambda d: d.update(format="something-else"), "not a hwnas exported model config"),
    (lambda d: d.update(params="many"), None),
    (lambda d: d["retrain"].update(colour="red"), "retrain: unknown key 'colour'"),
    (lambda d: d["onnx"].pop("length"), "onnx: missing key 'length'"),
    (lambda d: d["workload"].update(batch=0), "workload"),
])
def test_records_refuse_what_they_cannot_read(tmp_path, tiny_spaces, change, words) -> None:
    d = _card(tiny_spaces).to_dict()
    change(d)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(d))
    if words is None:  # a wrongly typed value that the dataclass accepts is not the codec's to judge
        ModelCard.read(path)
        return
    with pytest.raises(RecordError) as e:
        ModelCard.read(path)
    msg = str(e.value)
    assert str(path) in msg and words in msg and "\n" not in msg


def test_unreadable_record_files(tmp_path) -> None:
    bad = tmp_path / "run.json"
    bad.write_text("{not json")
    with pytest.raises(RecordError, match="not valid JSON"):
        api.SearchRun.read(bad)
    with pytest.raises(RecordError, match="no such file"):
        api.SearchRun.read(tmp_path / "none.json")


# ---- loading never executes code ------------------------------------------------------------------

class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # what an attacker's pickle does: run a command when unpickled
        return (Path.write_text, (self.marker, "pwned"))


def test_a_crafted_pickle_is_refused_not_run(tmp_path) -> None:
    marker = tmp_path / "ran"
    evil = pickle.dumps({"model": _Payload(marker)})
    for name in ("supernet.safetensors", "supernet.pt"):
        folder = tmp_path / name.split(".")[1]
        folder.mkdir()
        (folder / name).write_bytes(evil)
        with pytest.raises(UserError) as e:
            load_supernet(folder)
        assert "\n" not in str(e.value) and ("not a safetensors file" in str(e.value) or "can run code" in str(e.value))
        r = run_nas(tmp_path, "evaluate", "--supernet", str(folder), "--arch", "none.yaml")
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    with pytest.raises(UserError, match="not a safetensors file"):
        read_checkpoint(tmp_path / "safetensors" / "supernet.safetensors")
    assert not marker.exists()


def test_checkpoint_is_safetensors_with_the_record(tiny_trained) -> None:
    from safetensors import safe_open
    path = tiny_trained / "sn" / "supernet.safetensors"
    with safe_open(str(path), framework="pt") as f:
        header = json.loads(f.metadata()["header"])
        assert any(k.startswith("optim.") for k in f.keys())  # resumable: the optimizer's state is in it
    assert SupernetRecord.from_dict(header).step == 6
    model, record = load_supernet(tiny_trained / "sn")
    assert record.finished and record.train.steps == 6 and record.task == "lm"


# ---- one registry shape ---------------------------------------------------------------------------

def test_registry_contract() -> None:
    reg: Registry = Registry("widget")

    @reg.register
    class Round:
        name = "round"

        def __init__(self, size: int = 1) -> None:
            self.size = size

    assert reg.names() == ["round"] and "round" in reg and reg.create("round", size=3).size == 3
    with pytest.raises(UserError, match="unknown widget 'square'; choose one of: round"):
        reg.create("square")
    with pytest.raises(TypeError):
        reg.register(type("Nameless", (), {}))


def test_the_three_registries_share_it() -> None:
    from latency.predictors import PREDICTORS
    from nas.search import STRATEGIES
    from supernet.attention import ATTENTION
    for reg in (PREDICTORS, STRATEGIES, ATTENTION):
        assert isinstance(reg, Registry) and reg.names()
    r = run_nas(ROOT, "search", "--help")
    assert all(name in r.stdout for name in STRATEGIES.names())
    r = run_nas(ROOT, "fit-predictor", "--help")
    assert all(name in r.stdout for name in api.learned_predictors())


# ---- layering: library modules never import the command line ---------------------------------------

def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


@pytest.mark.parametrize("package", ["space", "supernet", "latency", "nas/search", "nas/api", "bench"])
def test_no_library_module_imports_the_cli(package: str) -> None:
    files = list((ROOT / package).rglob("*.py"))
    assert files
    for path in files:
        bad = {m for m in _imports(path) if m == "nas.cli" or m.startswith("nas.cli.") or m.endswith("_cli")}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
    for path in (ROOT / "nas").glob("*.py"):  # nas/ray_adapter.py and friends; __main__ is the command itself
        assert path.name == "__main__.py" or not {m for m in _imports(path) if m.startswith("nas.cli")}, path


def test_lower_packages_do_not_import_higher_ones() -> None:
    order = {"space": 0, "supernet": 1, "latency": 2, "nas": 3}
    for package, level in order.items():
        for path in (ROOT / package).rglob("*.py"):
            for module in _imports(path):
                top = module.split(".")[0]
                assert order.get(top, -1) <= level, f"{path.relative_to(ROOT)} imports {module}"


def _module_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (at any depth of the file: lazy imports
    count, those under `if TYPE_CHECKING:` do not: they never run). `from pkg import name` counts as
    importing pkg.name where that is a module, else pkg; a module importing its own ancestor package
    (its re-exports) is not an edge."""
    def name_of(p: Path) -> str:
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    mods = {name_of(p): p for top in ("space", "supernet", "latency", "nas", "configs") for p in (ROOT / top).rglob("*.py")}

    def resolve(m: str) -> str | None:
        while m and m not in mods:
            m = m.rpartition(".")[0]
        return m or None
    def type_only(tree: ast.AST) -> set[int]:  # imports under `if TYPE_CHECKING:` never run
        return {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                for stmt in node.body for n in ast.walk(stmt)}
    graph = {}
    for m, p in mods.items():
        out = set()
        tree = ast.parse(p.read_text())
        skip = type_only(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names]
            for n in names:
                r = resolve(n)
                if r and r != m and not m.startswith(r + "."):
                    out.add(r)
        graph[m] = out
    return graph


def test_no_import_circle_between_modules() -> None:
    graph = _module_graph()
    assert "nas.api._search" in graph and graph["nas.api._search"]
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                circle = path[path.index(n):] + [m, n] if n in path else [m, n]
                raise AssertionError("import circle: " + " -> ".join(dict.fromkeys(circle)) + f" -> {n}")
            if n not in state:
                visit(n, path + [m])
        state[m] = 2
    for m in sorted(graph):
        if m not in state:
            visit(m, [])


# ---- every bad search argument: one line, at once, nothing trained ---------------------------------

BAD_SEARCH = [
    (["--latency-budget", "20"], "has no unit"),
    (["--latency-budget", "0.0001ms"], "smallest predicted latency (its upper bound at 90% confidence)"),
    (["--hardware", "nope"], "unknown hardware 'nope'"),
    (["--space", "nope"], "unknown space 'nope'"),
    (["--workload", "len=9000"], "holds 256 (its max_len)"),
    (["--workload", "batch=1,len=2048,gen=128"], "needs a context of 2176 tokens, but space lm-shakespeare holds 256"),
    (["--workload", "speed=3"], "cannot read 'speed=3'"),
    (["--memory-budget", "8"], "has no unit"),
    (["--memory-budget", "1kB"], "raise --memory-budget"),
    (["--strategy", "random", "--population", "8"], "--population does not apply"),
    (["--ray-address", "127.0.0.1:1"], "nothing answers there"),
    (["--ray-address", "nowhere"], "HOST:PORT"),
    (["--supernet", "junk"], "holds no supernet"),
    (["--supernet", "mistyped"], "does not exist"),
    (["--eval-batches", "0"], "--eval-batches"),
    (["--strategy", "annealing"], "annealing"),
]


@pytest.mark.parametrize("args, words", BAD_SEARCH)
def test_bad_search_arguments_fail_before_any_training(tmp_path, args, words) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("not a supernet")
    base = {"--hardware": "a100", "--latency-budget": "20ms"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    argv = ["search", *[x for kv in base.items() for x in kv]]
    t0 = time.perf_counter()
    r = run_nas(tmp_path, *argv)
    took = time.perf_counter() - t0
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert words in r.stderr, r.stderr
    assert not (tmp_path / "runs").exists()  # it did not start training (nor write a run folder)
    assert took < 60  # generous on a loaded 2-core machine; typically 1-3 s


def test_a_search_request_is_written_once() -> None:
    """`SearchRequest` holds every field of a search once; plan_search and search take it or its fields."""
    from nas.api._search import as_request
    req = api.SearchRequest("a100", "20ms", iterations=8)
    assert as_request("a100", "20ms", iterations=8) == req
    assert as_request(req, "30ms", seed=2) == api.SearchRequest("a100", "30ms", iterations=8, seed=2)
    with pytest.raises(UserError, match="needs a latency budget"):
        as_request("a100")
    with pytest.raises(TypeError):
        api.SearchRequest("a100", "20ms", iteration=8)
    import inspect

    from nas.cli import search as search_cli
    cli = inspect.getsource(search_cli.search_cmd.callback)
    assert "SearchRequest(" in cli and "plan_search(request)" in cli


def test_a_train_request_is_written_once() -> None:
    from nas.api._supernet import as_train_request
    req = as_train_request("lm-shakespeare", out="x", steps=5, device="cpu")
    assert req == api.TrainRequest("lm-shakespeare", out="x", device="cpu", settings={"steps": 5})
    assert as_train_request(req, seed=3).settings == {"steps": 5, "seed": 3}
    with pytest.raises(UserError, match="unknown"):
        api.plan_training("lm-shakespeare", out="y", stepz=5)
