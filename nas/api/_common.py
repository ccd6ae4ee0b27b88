"""Argument coercion shared by the API functions: names or objects, both accepted."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from space import Arch, SearchSpace, Workload, load_archs, load_space


def as_space(space: str | Path | SearchSpace) -> SearchSpace:
    return space if isinstance(space, SearchSpace) else load_space(space)


def as_archs(archs: str | Path | Arch | Sequence[Arch]) -> list[Arch]:
    if isinstance(archs, Arch):
        return [archs]
    if isinstance(archs, (str, Path)):
        return load_archs(archs)
    return list(archs)


def as_hardware(hardware: Any):
    from latency.hardware import Hardware, load_hardware
    return hardware if isinstance(hardware, Hardware) else load_hardware(hardware)


def as_workload(workload: str | Workload | None, space: SearchSpace) -> Workload:
    if workload is None:
        return space.workload
    return workload if isinstance(workload, Workload) else Workload.parse(workload, base=space.workload)
