"""Where measured latency data and fitted predictors live.

The user's store (`$HWNAS_HOME`, default `~/.hwnas`) holds what `nas profile` and
`nas fit-predictor` wrote on this machine; the package ships measured datasets and predictors for
the machines we could measure (`configs/measured/HARDWARE/`). The user's store wins.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from space import Workload


def store_root() -> Path:
    return Path(os.environ.get("HWNAS_HOME", "~/.hwnas")).expanduser()


def shipped_root() -> Path:
    from configs import config_dir
    return config_dir() / "measured"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def dataset_path(hardware: str, root: Path | None = None) -> Path:
    return (root or store_root()) / "hardware" / hardware / "latency.csv"


def bundle_name(space: str, workload: Workload) -> str:
    return f"predictor-{_slug(space)}-b{workload.batch}-n{workload.seq_len}-g{workload.gen_tokens}.pt"


def bundle_path(hardware: str, space: str, workload: Workload, root: Path | None = None) -> Path:
    return (root or store_root()) / "hardware" / hardware / bundle_name(space, workload)


def find_bundle(hardware: str, space: str, workload: Workload) -> Path | None:
    """The user's fitted predictor, else a shipped one, else None (the analytic model answers)."""
    for path in (bundle_path(hardware, space, workload), shipped_root() / hardware / bundle_name(space, workload)):
        if path.is_file():
            return path
    return None


def find_dataset(hardware: str) -> Path | None:
    for path in (dataset_path(hardware), shipped_root() / hardware / "latency.csv"):
        if path.is_file():
            return path
    return None
