"""The command line as a user meets it: output, exit codes, one-line errors."""
from __future__ import annotations

import subprocess
import sys

import pytest

from space import load_archs, load_space


def nas(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_help_lists_every_stage() -> None:
    r = nas("--help")
    assert r.returncode == 0
    for stage in ("train-supernet", "profile", "fit-predictor", "predict", "search", "export", "retrain",
                  "evaluate", "generate", "translate", "hardware", "space"):
        assert stage in r.stdout


def test_space_show(tmp_path) -> None:
    r = nas("space", "show", "lm-shakespeare", cwd=tmp_path)  # configs ship with the package
    assert r.returncode == 0, r.stderr
    size = load_space("lm-shakespeare").size()
    assert f"{size:,}" in r.stdout
    for word in ("smallest", "largest", "params", "FLOPs", "window", "linear", "precision: {fp32, int8, bf16, fp16}"):
        assert word in r.stdout


def test_space_sample_feeds_arch_files(tmp_path) -> None:
    r = nas("space", "sample", "folio-translation", "-n", "5", "--seed", "3")
    assert r.returncode == 0, r.stderr
    path = tmp_path / "archs.yaml"
    path.write_text(r.stdout)
    archs = load_archs(path)
    space = load_space("folio-translation")
    assert len(archs) == 5 and all(space.contains(a) for a in archs)
    assert nas("space", "sample", "folio-translation", "-n", "5", "--seed", "3").stdout == r.stdout


@pytest.mark.parametrize("args, words", [
    (("space", "show", "nope"), ["unknown space 'nope'", "lm-shakespeare"]),
    (("space", "show", "lm-shakespeare", "--workload", "len=9000"), ["max_len=256"]),
    (("space", "show", "lm-shakespeare", "--workload", "speed=3"), ["cannot read 'speed=3'"]),
    (("search", "--hardware", "a100", "--latency-budget", "20ms", "--option", "nope=1"), ["unknown option 'nope'", "screen"]),
    (("search", "--hardware", "a100", "--latency-budget", "20ms", "--option", "screen"), ["KEY=VALUE"]),
])
def test_bad_input_one_line(args, words) -> None:
    r = nas(*args)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for word in words:
        assert word in r.stderr


def test_bad_space_file(tmp_path) -> None:
    p = tmp_path / "mine.yaml"
    p.write_text("name: x\nkind: decoder\nhead_dim: 8\nvocab_size: 9\nmax_len: 16\n"
                 "decoder: {embed: [8], depth: [1], heads: [1], ffn: [8], widht: [3]}\n")
    r = nas("space", "show", str(p))
    assert r.returncode == 1 and "mine.yaml.decoder: unknown key 'widht'" in r.stderr
    assert "Traceback" not in r.stderr


def test_every_stage_has_help() -> None:
    for stage in ("train-supernet", "profile", "fit-predictor", "predict", "search", "export", "retrain",
                  "evaluate", "generate", "hardware"):
        r = nas(stage, "--help")
        assert r.returncode == 0 and "Usage" in r.stdout, stage


def test_strategy_options_parse_as_users_write_them() -> None:
    from nas.cli.search import parse_options
    assert parse_options(("screen=1", "aging=false", "mutation_prob=0.2", "x=y")) == {
        "screen": 1, "aging": False, "mutation_prob": 0.2, "x": "y"}
    assert parse_options(()) is None

