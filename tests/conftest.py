"""Tiny spaces, supernets and corpora shared by the tests: width 16-32, 1-2 layers, so a model test
runs in milliseconds and a training test in seconds."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from space import ATTENTION_TYPES, SearchSpace, space_from_dict

CAUSAL = [t for t, s in ATTENTION_TYPES.items() if s.causal]
ALL = list(ATTENTION_TYPES)
ATTN = {"softmax": {}, "window": {"window": [3, 5]}, "linear": {}, "retention": {}, "linformer": {"proj_len": [4, 8]},
        "fastformer": {}}
KINDS = ("decoder", "encoder", "encoder-decoder")
RAM_DISK = Path("/dev/shm")


def pytest_configure(config) -> None:
    """Test folders on a RAM disk where there is one with room: searches fsync every journal entry
    (Optuna's file journal) and every atomic write, which on a network disk made up a fifth of the
    suite's time; the code paths are the same. `--basetemp` chooses otherwise."""
    if config.option.basetemp is not None or not RAM_DISK.is_dir() or not os.access(RAM_DISK, os.W_OK):
        return
    if shutil.disk_usage(RAM_DISK).free < 2 * 2**30:
        return
    config.option.basetemp = config._hwnas_ram_tmp = tempfile.mkdtemp(prefix="hwnas-pytest-", dir=RAM_DISK)


def pytest_unconfigure(config) -> None:
    folder = getattr(config, "_hwnas_ram_tmp", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def _stack(types, cross=False):
    d = {"embed": [16, 32], "depth": [1, 2], "heads": [2, 4], "kv_heads": [1, 2, 4], "ffn_ratio": [1, 2],
         "attention": {t: ATTN[t] for t in types}}
    if cross:
        d.update(cross_layers=[1, 2], cross_heads=[1, 2])
    return d


def tiny_space(kind: str, vocab: int = 23, max_len: int = 96) -> SearchSpace:
    """Every attention type its stacks allow, 1-2 layers of width 16-32, head size 8."""
    base = {"name": f"tiny-{kind}", "head_dim": 8, "vocab_size": vocab, "max_len": max_len, "kind": kind}
    if kind == "decoder":
        return space_from_dict({**base, "decoder": _stack(CAUSAL)})
    if kind == "encoder":
        return space_from_dict({**base, "classes": 3, "encoder": _stack(ALL)})
    return space_from_dict({**base, "encoder": _stack(ALL), "decoder": _stack(CAUSAL, cross=True)})


# The same tiny spaces as YAML files for the command line (byte vocabulary, a workload that fits).
TINY_LM_YAML = """\
name: tiny-lm
kind: decoder
head_dim: 8
vocab_size: 259
max_len: 64
workload: {batch: 1, seq_len: 16, gen_tokens: 8}
decoder:
  embed: [16, 32]
  depth: [1, 2]
  heads: [1, 2]
  kv_heads: [1, 2]
  ffn_ratio: [1, 2]
  attention:
    softmax: {}
    window: {window: [4, 8]}
    linear: {}
"""

TINY_TRANSLATION_YAML = """\
name: tiny-translation
kind: encoder-decoder
head_dim: 8
vocab_size: 259
max_len: 64
workload: {batch: 1, seq_len: 16, gen_tokens: 16}
encoder:
  embed: [16, 32]
  depth: [1, 2]
  heads: [1, 2]
  ffn_ratio: [1, 2]
  attention: {softmax: {}, linformer: {proj_len: [4, 8]}, fastformer: {}}
decoder:
  embed: [16, 32]
  depth: [1, 2]
  heads: [1, 2]
  ffn_ratio: [1, 2]
  cross_layers: [1, 2]
  cross_heads: [1, 2]
  attention: {softmax: {}, window: {window: [4, 8]}, linear: {}}
"""


@pytest.fixture(autouse=True, scope="session")
def _own_hwnas_home(tmp_path_factory):
    """The user's store ($HWNAS_HOME: predictors, profiles, search scores) is the test session's own:
    nothing a developer measured or searched changes a test, and no test writes into ~/.hwnas."""
    old = os.environ.get("HWNAS_HOME")
    os.environ["HWNAS_HOME"] = str(tmp_path_factory.mktemp("hwnas-home"))
    yield
    if old is None:
        os.environ.pop("HWNAS_HOME", None)
    else:
        os.environ["HWNAS_HOME"] = old


@pytest.fixture(scope="session")
def tiny_spaces() -> dict[str, SearchSpace]:
    return {k: tiny_space(k) for k in KINDS}


@pytest.fixture(scope="session")
def tiny_supernets(tiny_spaces):
    """One untrained SuperTransformer per kind (seed 1): what model invariants are tested on."""
    from supernet.model import SuperTransformer
    return {k: SuperTransformer(s, seed=1) for k, s in tiny_spaces.items()}


@pytest.fixture(scope="session")
def tiny_work(tmp_path_factory) -> Path:
    """A folder with the tiny spaces as YAML and a tiny text corpus (4 documents)."""
    root = tmp_path_factory.mktemp("work")
    (root / "tiny.yaml").write_text(TINY_LM_YAML)
    (root / "tt.yaml").write_text(TINY_TRANSLATION_YAML)
    text = "".join(f"Line {i}: to be, or not to be, that is the question.\n" for i in range(400))
    corpus = root / "corpus"
    corpus.mkdir()
    for name in ("a", "b", "c", "d"):
        (corpus / f"{name}.txt").write_text(text)
    return root


@pytest.fixture(scope="session")
def tiny_trained(tiny_work: Path) -> Path:
    """A tiny language-model supernet trained 6 steps on the tiny corpus, in tiny_work/sn."""
    from nas import api
    api.train_supernet(tiny_work / "tiny.yaml", out=tiny_work / "sn", data=tiny_work / "corpus", steps=6,
                       batch_size=4, seq_len=32, progress=False)
    return tiny_work


def run_nas(cwd: Path, *args: str, home: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """`nas ARGS` in a subprocess, as a user runs it; HWNAS_HOME kept inside the test's folder."""
    env = {**os.environ, "HWNAS_HOME": str(home or Path(cwd) / "home")}
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


@pytest.fixture()
def nas_cli():
    return run_nas
