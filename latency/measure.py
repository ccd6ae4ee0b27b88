"""Timing archs on this machine the way the profiler does, reported two ways: the raw wall-clock
median (what a stopwatch shows now) and, when the hardware has a measured dataset, the ratio to
the dataset's reference arch times the reference's median there (the dataset's scale, which
cancels this machine's drift and is what the measured predictor predicts)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from latency.protocol import TimingProtocol
from space import Arch, Workload
from space.errors import UserError

PROTOCOL = TimingProtocol(warmup=3, rounds=7, max_spread=0.05, extra_rounds=8)


@dataclass(frozen=True)
class Measurement:
    arch_id: str
    raw_s: float  # median wall clock of the rounds
    spread: float  # relative IQR of the rounds
    normalised_s: float | None  # on the dataset's reference scale; None without a dataset
    scale: str  # "raw" or "reference-normalised (FILE)"
    device_name: str
    threads: int
    workload: str
    device: str = "cpu"
    note: str = ""  # how the device measured relates to the hardware asked for

    @property
    def on_target(self) -> bool:
        return not self.note
    @property
    def seconds(self) -> float:
        """The dataset-scale figure where there is one, else the raw one."""
        return self.normalised_s if self.normalised_s is not None else self.raw_s


def target_device(hardware: str | None) -> tuple[str, str]:
    """(device to time on, note): the hardware's own device when this machine has it, else this
    machine's CPU, with a note saying so plainly."""
    import torch
    if not hardware:
        return "cpu", ""
    from latency.hardware import load_hardware
    hw = load_hardware(hardware)
    if hw.device == "cuda":
        if torch.cuda.is_available():
            return "cuda", ""
        return "cpu", f"{hw.name} (a GPU) is not on this machine: measured on its CPU instead"
    return "cpu", ""


def measure(archs: Sequence[Arch], workload: Workload, hardware: str | None = None,
            protocol: TimingProtocol = PROTOCOL, device: str | None = None) -> list[Measurement]:
    """Times `archs` in one interleaved group beside their space's reference arch (when the archs
    belong to a shipped space), with the thread count of `hardware`'s profile, on `hardware`'s
    device when this machine has it (see `target_device`)."""
    note = ""
    if device is None:
        device, note = target_device(hardware)
    from latency.dataset import read_dataset, reference_scale
    from latency.model import space_for
    from latency.profile import reference_arch, time_group
    from latency.store import find_dataset
    try:
        reference = reference_arch(space_for(archs[0]))
    except UserError:
        reference = None
    threads = None
    if hardware:
        from latency.hardware import load_hardware
        threads = load_hardware(hardware).threads  # as that profile's dataset was measured
    timings, meta = time_group(list(archs), workload, device, protocol, threads=threads, reference=reference)
    scale, path = None, find_dataset(hardware) if hardware else None
    if reference is not None and path is not None:
        scale = reference_scale(read_dataset(path), reference.id)
    out = []
    for arch, t in zip(archs, timings):
        norm = t.ratio * scale if scale is not None and t.ratio is not None else None
        out.append(Measurement(arch.id, t.median, t.spread, norm,
                               f"reference-normalised ({path.name})" if norm is not None else "raw",
                               meta["device_name"], meta["threads"], str(workload), device, note))
    return out
