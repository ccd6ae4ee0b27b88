"""The whole workflow through the CLI on a tiny space and a tiny corpus:
train-supernet -> evaluate -> search -> export -> generate -> retrain, plus resume and errors."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_nas

@pytest.fixture(scope="module")
def trained(tiny_work: Path) -> Path:
    r = run_nas(tiny_work, "train-supernet", "--space", "tiny.yaml", "--data", "corpus", "--steps", "6",
                "--batch-size", "4", "--seq-len", "32", "--out", "cli-sn")
    assert r.returncode == 0, r.stderr
    assert (tiny_work / "cli-sn" / "supernet.safetensors").is_file() and "supernet saved" in r.stderr
    return tiny_work


def nas(work: Path, *args: str) -> subprocess.CompletedProcess:
    return run_nas(work, *args)


@pytest.mark.slow  # ~40 s: trains, searches, exports, retrains through the CLI
def test_pipeline(trained: Path) -> None:
    work = trained
    r = nas(work, "space", "sample", "tiny.yaml", "-n", "3")
    (work / "three.yaml").write_text(r.stdout)
    r = nas(work, "evaluate", "--supernet", "cli-sn", "--arch", "three.yaml")
    assert r.returncode == 0, r.stderr
    assert "perplexity" in r.stdout and r.stdout.count("\n") >= 4

    args = ["search", "--hardware", "a100", "--latency-budget", "2s", "--space", "tiny.yaml", "--supernet", "cli-sn",
            "--iterations", "12", "--out", "run", "--eval-batches", "1"]
    r = nas(work, *args)
    assert r.returncode == 0, r.stderr
    assert "kernel model from the measured kernel tables" in r.stderr and "best within 2s" in r.stderr
    assert "eager runtime" in r.stderr  # the runtime the budget is for
    assert "prefill (time to first token)" in r.stderr  # a generation workload: its phases beside the total
    run = work / "run"
    for name in ("trials.csv", "best.yaml", "pareto.csv", "pareto.png", "journal.log", "run.json"):
        assert (run / name).is_file(), name
    trials = (run / "trials.csv").read_text().splitlines()
    assert len(trials) == 1 + 12

    # resuming with more iterations adds only the missing trials
    r = nas(work, *[a if a != "12" else "16" for a in args])
    assert r.returncode == 0, r.stderr
    ids = [line.split(",")[1] for line in (run / "trials.csv").read_text().splitlines()[1:]]
    assert len(ids) == 16 and len(set(ids)) == 16

    r = nas(work, "export", "run", "--out", "model")
    assert r.returncode == 0, r.stderr
    card = (work / "model" / "README.md").read_text()
    assert "predicted latency on a100" in card and "kernels predictor, eager runtime" in card
    cfg = json.loads((work / "model" / "config.json").read_text())
    assert cfg["format"] == "hwnas-subtransformer" and cfg["hardware"] == "a100" and cfg["rank"] == 1

    r = nas(work, "generate", "model", "--prompt", "To be", "--tokens", "10")
    assert r.returncode == 0 and r.stdout.startswith("To be")

    r = nas(work, "retrain", "model", "--mode", "finetune", "--steps", "3", "--batch-size", "4", "--seq-len", "32")
    assert r.returncode == 0, r.stderr
    result = json.loads((work / "model" / "retrained-finetune" / "retrain.json").read_text())
    assert result["measured_s"] > 0 and result["val_loss"] > 0 and "latency_s" in result


def test_search_errors(trained: Path) -> None:
    work = trained
    r = nas(work, "search", "--hardware", "a100", "--latency-budget", "20", "--space", "tiny.yaml")
    assert r.returncode == 1 and "unit" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = nas(work, "search", "--hardware", "a100", "--latency-budget", "1us", "--space", "tiny.yaml",
            "--supernet", "cli-sn", "--out", "nope")
    assert r.returncode == 1 and "smallest predicted latency" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    r = nas(work, "export", "nowhere", "--out", "x")
    assert r.returncode == 1 and "not a search run folder" in r.stderr


@pytest.mark.slow  # ~60 s: the translation workflow through the CLI
def test_translation_pipeline(tiny_work: Path) -> None:
    work = tiny_work
    words = ["thou", "art", "hath", "doth", "thee", "mine", "love", "king"]
    src = [" ".join(words[(i * k) % 8] for k in range(1, 2 + i % 3)) for i in range(300)]
    (work / "src.txt").write_text("\n".join(src) + "\n")
    (work / "tgt.txt").write_text("\n".join(s.upper() for s in src) + "\n")
    r = nas(work, "train-supernet", "--space", "tt.yaml", "--src", "src.txt", "--tgt", "tgt.txt", "--steps", "8",
            "--batch-size", "8", "--out", "tsn")
    assert r.returncode == 0, r.stderr
    r = nas(work, "space", "sample", "tt.yaml", "-n", "2")
    (work / "two.yaml").write_text(r.stdout)
    r = nas(work, "evaluate", "--supernet", "tsn", "--arch", "two.yaml", "--sentences", "10", "--beam", "2")
    assert r.returncode == 0, r.stderr
    assert "BLEU greedy" in r.stdout and "chrF beam 2" in r.stdout and r.stdout.count("\n") >= 3

    r = nas(work, "search", "--hardware", "a100", "--latency-budget", "2s", "--space", "tt.yaml", "--supernet", "tsn",
            "--iterations", "10", "--out", "trun", "--eval-batches", "1")
    assert r.returncode == 0, r.stderr
    assert (work / "trun" / "best.yaml").is_file()
    r = nas(work, "export", "trun", "--out", "tmodel")
    assert r.returncode == 0, r.stderr
    r = nas(work, "translate", "tmodel", "--text", "thou art", "--text", "love", "--beam", "2")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2, r.stderr
    r = nas(work, "retrain", "tmodel", "--mode", "distill", "--steps", "3", "--batch-size", "8", "--sentences", "5")
    assert r.returncode == 0, r.stderr
    result = json.loads((work / "tmodel" / "retrained-distill" / "retrain.json").read_text())
    assert result["measured_s"] > 0 and result["val_loss"] > 0 and 0 <= result["bleu"] <= 100
    assert "test BLEU" in r.stderr
    r = nas(work, "generate", "tmodel")
    assert r.returncode == 1 and "does not generate" in r.stderr
