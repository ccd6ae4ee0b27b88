"""`nas profile`: sample archs, time their SubTransformers on this device, append to the dataset."""
from __future__ import annotations

from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from latency.dataset import append_rows, done_keys, row_for
from latency.hardware import Hardware
from latency.protocol import TimingProtocol, Timer, cpu_timer, cuda_timer, measure
from latency.runner import build, device_metadata
from space import Arch, SearchSpace, Workload, make_rng
from space.errors import UserError


def arch_stream(space: SearchSpace, seed: int) -> Iterator[Arch]:
    """The same archs in the same order for a seed: the extremes first, then unique samples.
    A resumed run walks the same stream and skips what the dataset already holds."""
    seen = set()
    rng = make_rng(seed)
    for arch in (space.smallest(), space.largest()):
        seen.add(arch.id)
        yield arch
    while True:
        arch = space.sample(rng)
        if arch.id not in seen:
            seen.add(arch.id)
            yield arch


def check_device(hw: Hardware) -> str:
    if hw.device == "cuda" and not torch.cuda.is_available():
        raise UserError(f"hardware {hw.name!r} runs on CUDA and this machine has no GPU; profile on that machine "
                        f"(or through Ray with --ray-address), or use its analytic model as is")
    return hw.device


def reference_arch(space: SearchSpace) -> Arch:
    """A fixed mid-sized arch timed in every group: the yardstick that cancels the machine's drift.
    Always at the space's reference precision (fp32), whatever precisions the space or device offer."""
    return space.sample(make_rng(10**6)).with_precision(space.precision[0])


def time_group(archs: list[Arch], workload: Workload, device: str, protocol: TimingProtocol,
               threads: int | None = None, timer: Timer | None = None,
               reference: Arch | None = None, backend: str = "torch",
               prefill_only: bool = False) -> tuple[list[Any], dict[str, Any]]:
    """Timings of a group of archs measured together (interleaved), and the device metadata (with
    the reference's own timing in this group as `ref_s`). Runs wherever it is called: locally, or
    inside a Ray task on the device's node. `prefill_only`: a generation workload's first call
    alone (time to first token)."""
    if threads:
        torch.set_num_threads(threads)  # also inside Ray workers, which are reused between tasks
    models = {a.id: build(a, workload, device, backend=backend, prefill_only=prefill_only) for a in archs}
    ref_key = None
    if reference is not None:
        ref_key = ("reference", reference.id)
        models[ref_key] = build(reference, workload, device, backend=backend)
    timer = timer or (cuda_timer if device == "cuda" else cpu_timer)
    timings = measure(models, protocol, timer, reference=ref_key)
    meta = device_metadata(device)
    if backend != "torch":
        meta["device"] = f"{device}+{backend}"
    if ref_key is not None:
        meta.update(ref_s=timings[ref_key].median, ref_id=reference.id)
    return [timings[a.id] for a in archs], meta


def profile(space: SearchSpace, hw: Hardware, workload: Workload, samples: int, out: Path, *, seed: int = 0,
            protocol: TimingProtocol = TimingProtocol(), group: int = 8, threads: int | None = None,
            backend: str = "torch",
            run_group: Callable[..., tuple[list[Any], dict[str, Any]]] | None = None,
            progress: Callable[[int, int, str], None] | None = None) -> int:
    """Measures `samples` archs (the first of `arch_stream`) not yet in `out`; returns rows added.
    `run_group` replaces local timing (the Ray adapter passes one that runs on a remote node)."""
    done = done_keys(out)
    todo = [a for a in islice(arch_stream(space, seed), samples) if (hw.name, str(workload), a.id) not in done]
    if run_group is None:
        check_device(hw)
        run_group = partial(time_group, backend=backend)
    reference = reference_arch(space)
    added = 0
    for i in range(0, len(todo), group):
        chunk = todo[i:i + group]
        timings, meta = run_group(chunk, workload, hw.device, protocol, threads, reference=reference)
        append_rows(out, [row_for(a, workload, hw.name, space.name, t, meta) for a, t in zip(chunk, timings)])
        added += len(chunk)
        if progress:
            med = sorted(t.median for t in timings)[len(timings) // 2]
            progress(added, len(todo), f"group median {med * 1e3:.1f} ms, widest spread "
                                       f"{max(t.spread for t in timings):.1%}")
    return added
