"""What is timed: an arch's standalone SubTransformer running a workload on a device.

Latency does not depend on the weights' values, so models are built freshly initialised (no
supernet needed). A forward workload is one pass over batch x length; a generation workload is a
prefill of the prompt (the source, for encoder-decoder) plus `gen_tokens` greedy decode steps with
the cache, exactly as `space.cost.analytic_cost` counts it.
"""
from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from space import Arch, Workload
from latency.protocol import BACKENDS
from space.errors import UserError
from supernet.corpus import ByteTokenizer
from supernet.functional import Cache
from supernet.subnet import SubTransformer




def build(arch: Arch, workload: Workload, device: str = "cpu", seed: int = 0,
          backend: str = "torch", model: SubTransformer | None = None, prefill_only: bool = False) -> Callable[[], None]:
    """One call of the workload on `arch`'s SubTransformer: freshly initialised (latency does not
    depend on the weights' values), or `model`, an exported one, as a user would run it.
    `prefill_only`: a generation workload's first call alone (the prompt into an empty cache, the
    first token's logits: time to first token)."""
    model = (model if model is not None else SubTransformer(arch).reset_parameters(seed)).to(device).eval()
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, min(arch.vocab_size, 256), (workload.batch, workload.seq_len), generator=g).to(device)
    if backend == "onnxruntime":
        return _onnx(model, arch, workload, tokens)
    if backend != "torch":
        raise UserError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    bos = torch.full((workload.batch, 1), min(ByteTokenizer.BOS, arch.vocab_size - 1), device=device)

    @torch.inference_mode()
    def run() -> None:
        if arch.kind == "encoder" or not workload.generation:
            if arch.kind == "encoder-decoder":
                model(tokens, src=tokens)
            else:
                model(tokens)
            return
        cache = Cache()
        if arch.kind == "decoder":
            logits = model(tokens, cache=cache, last_only=True)
            steps = workload.gen_tokens
        else:  # the first decoder step also encodes the source
            logits = model(bos, src=tokens, cache=cache, last_only=True)
            steps = workload.gen_tokens - 1
        if prefill_only:
            logits.argmax(-1)  # the first token, as a generation picks it
            return
        for _ in range(steps):
            logits = model(logits.argmax(-1), cache=cache, last_only=True)

    return run


def _onnx(model: SubTransformer, arch: Arch, workload: Workload, tokens: torch.Tensor) -> Callable[[], None]:
    """The same SubTransformer as an ONNX graph run by ONNX Runtime on the CPU (forward workloads:
    the decoding cache is not part of the graph); an int8 model quantized by ONNX Runtime."""
    if workload.generation:
        raise UserError("--backend onnxruntime times forward passes; use gen=0 "
                        "(e.g. --workload batch=1,len=64,gen=0) or the torch backend")
    import tempfile

    from supernet.onnx_export import export_onnx, run, session
    folder = getattr(model, "folder", None)
    path = Path(folder) / "model.onnx" if folder is not None else None
    with tempfile.TemporaryDirectory() as tmp:
        if path is None or not path.is_file():
            path = export_onnx(model, tmp, length=workload.seq_len, batch=workload.batch).path
        sess = session(path, torch.get_num_threads())  # the thread count the dataset records
    inputs = (tokens.cpu(), tokens.cpu()) if arch.kind == "encoder-decoder" else (tokens.cpu(),)
    return lambda: run(sess, arch, inputs)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_identity() -> dict[str, Any]:
    """This CPU's vendor, family and model numbers: a virtual machine's model name alone ("AMD
    EPYC") is shared by generations that time differently (Zen 1 is family 23, Zen 3 family 25)."""
    ident: dict[str, Any] = {}
    keys = {"vendor_id": "vendor", "cpu family": "family", "model": "model"}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                name = keys.get(key.strip())
                if name and name not in ident:
                    value = value.strip()
                    ident[name] = int(value) if value.isdigit() else value
                if not line.strip() and ident:
                    break  # the first processor's block is enough
    except OSError:
        pass
    return ident


def device_metadata(device: str) -> dict[str, Any]:
    """Recorded with every row: what was measured where."""
    meta = {"device": device, "cpu_model": cpu_model(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if device == "cuda":
        meta["device_name"] = torch.cuda.get_device_name()
        meta["cuda"] = torch.version.cuda
    else:
        meta["device_name"] = cpu_label()
    return meta


def cpu_label() -> str:
    """This CPU's model name with its family and model numbers, `AMD EPYC (family 25, model 17)`:
    what a CPU dataset records as its device, so a lookalike CPU is told apart later."""
    ident = cpu_identity()
    numbers = ", ".join(f"{k} {ident[k]}" for k in ("family", "model") if k in ident)
    return f"{cpu_model()} ({numbers})" if numbers else cpu_model()
