"""Argument coercion shared by the API functions: names or objects, both accepted."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from space import Arch, SearchSpace, Workload, load_archs, load_space
from space.errors import UserError


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
    w = workload if isinstance(workload, Workload) else Workload.parse(workload, base=space.workload)
    from space.cost import positions_needed
    need = positions_needed(space.kind, w)
    if need > space.max_len:
        raise UserError(f"--workload {w}: needs a context of {need} tokens, but space {space.name} holds "
                        f"{space.max_len} (its max_len); give a shorter workload or a space with a longer context")
    return w
