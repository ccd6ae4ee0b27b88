"""The kernel-level GPU latency model (issue 23, stage 2): the kernels it lists are the ones the real
model launches (count and GEMM FLOPs, traced on this CPU), its answers follow the runtime the budget
is for, and the runtime travels with the answer into the run record and the model card."""
from __future__ import annotations

import json
import math
import random
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from latency.gpu import GpuLatency
from latency.hardware import HardwareError, hardware_from_dict, load_hardware
from latency.runner import build
from space import Workload, load_space
from space.kernels import kernel_count, kernel_invocations

NO_KERNEL = {"to", "_to_copy", "alias", "detach", "lift_fresh", "_local_scalar_dense"}  # host-side or no-op here
# matrix products as dispatched under inference mode (linear and matmul unsplit) -> the left operand's position
GEMMS = {"linear": 0, "matmul": 0, "mm": 0, "bmm": 0, "addmm": 1, "baddbmm": 1}


class Kernels(TorchDispatchMode):
    """The aten ops that launch a kernel (not a view that stays one, not a host-side no-op), and the GEMMs."""

    def __init__(self) -> None:
        super().__init__()
        self.n, self.gemm_flops, self.shapes = 0, 0, Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if func.is_view:  # a view launches nothing, unless it had to copy (reshape of a strided tensor)
            src = next((a for a in args if isinstance(a, torch.Tensor)), None)
            if (isinstance(out, torch.Tensor) and src is not None
                    and out.untyped_storage().data_ptr() != src.untyped_storage().data_ptr()):
                self.n += 1
        elif name not in NO_KERNEL:
            self.n += 1
        if name in GEMMS:
            k = args[GEMMS[name]].shape[-1]
            self.gemm_flops += 2 * out.numel() * k  # 2 m n k, batched
            self.shapes[(out.numel() // out.shape[-1], out.shape[-1], k)] += 1  # (rows stacked, n, k)
        elif name == "einsum" and len(args[1]) == 2:  # a product of two operands: 2 x every index's size
            sizes = {c: n for spec, x in zip(args[0].split("->")[0].split(","), args[1]) for c, n in zip(spec, x.shape)}
            self.gemm_flops += 2 * math.prod(sizes.values())
        return out


def listed_gemm_flops(arch, w) -> int:
    return sum(2 * k[1] * k[2] * k[3] for ks, _ in kernel_invocations(arch, w) for k in ks if k[0] == "gemm")


def listed_gemm_shapes(arch, w) -> Counter:
    return Counter(k[1:] for ks, _ in kernel_invocations(arch, w) for k in ks if k[0] == "gemm")


def traced(arch, w) -> Kernels:
    run = build(arch, w)
    run()
    with Kernels() as k:
        run()
    return k


CASES = [("lm-shakespeare", "len=64,gen=32"), ("lm-shakespeare", "len=48,gen=0"), ("lm-shakespeare", "len=16,gen=1"),
         ("lm-shakespeare", "batch=2,len=40,gen=3"), ("folio-translation", "len=24,gen=8"),
         ("folio-translation", "batch=2,len=24,gen=0"), ("lm-shakespeare-long", "len=300,gen=4")]


@pytest.mark.parametrize("space_name, workload", CASES)
def test_listed_kernels_are_the_launched_ones(space_name: str, workload: str) -> None:
    space = load_space(space_name)
    w = Workload.parse(workload, base=space.workload)
    rng = random.Random(zlib.crc32(f"{space_name}/{workload}".encode()))  # the same archs in every process
    fp32 = space.restricted(["fp32"])
    archs = [fp32.sample(rng) for _ in range(2)] + [fp32.with_attention(["softmax"]).sample(rng)]
    for arch in archs:
        k = traced(arch, w)
        listed = kernel_count(arch, w)
        assert abs(listed / k.n - 1) <= 0.02, (arch.id, listed, k.n)  # exact at batch 1 when this was written
        assert listed_gemm_flops(arch, w) == k.gemm_flops, (arch.id, listed_gemm_flops(arch, w), k.gemm_flops)
        if arch.encoder is None:  # decoders' products are all linear/matmul: the shapes themselves, with the batch
            assert listed_gemm_shapes(arch, w) == k.shapes, arch.id


@pytest.mark.parametrize("space_name, prompt", [("lm-shakespeare", 40), ("lm-shakespeare-long", 200)])
def test_each_call_lists_the_kernels_it_launches(space_name: str, prompt: int) -> None:
    """Per call, not only in total: the prompt's prefill alone, and one decode step (the difference
    between generating two tokens and one), each within a few kernels of the real dispatch."""
    space = load_space(space_name).restricted(["fp32"])
    rng = random.Random(prompt)
    for arch in [space.sample(rng) for _ in range(2)] + [space.with_attention(["softmax"]).sample(rng)]:
        one, two = Workload(1, prompt, 1), Workload(1, prompt, 2)
        prefill = traced(arch, one).n
        step = traced(arch, two).n - prefill
        listed = kernel_invocations(arch, two)
        assert len(listed) == 3  # the prefill, then one decode step per generated token
        assert abs(len(listed[0][0]) + len(listed[1][0]) - prefill) <= 1, (arch.id, prefill)
        assert abs(len(listed[2][0]) - step) <= 1, (arch.id, len(listed[2][0]), step)


@pytest.fixture(scope="module")
def a100():
    return load_hardware("a100")


def model_for(hw, space_name="lm-shakespeare", workload=None):
    from latency.model import latency_model
    space = load_space(space_name)
    return latency_model(hw, space, workload or space.workload)


def test_gpus_use_their_kernel_tables_and_others_say_they_have_none(a100) -> None:
    for name in ("a100", "h100", "h200"):
        m = model_for(load_hardware(name))
        assert m.source == "kernels" and m.gpu is not None, name
    other = model_for(load_hardware("rtx4090"))
    assert other.source == "analytic" and other.gpu is None


def test_cuda_graphs_remove_the_host_and_size_still_costs(a100) -> None:
    space = load_space("lm-shakespeare").restricted(["fp32"])
    small, large = space.smallest(), space.largest()
    eager = model_for(a100)
    graphs = model_for(a100.with_runtime("cuda-graphs"))
    e, g = eager.predict([small, large])[0], graphs.predict([small, large])[0]
    assert (g < e).all()  # the graph replays what eager dispatches op by op
    assert e[0] < e[1] and g[0] < g[1]  # a larger model is slower in both
    for m in (eager, graphs):
        fast, slow = m.predict_range([large])
        point = m.predict([large])[0]
        assert fast[0] < point[0] < slow[0]
    with pytest.raises(ValueError, match="runtime"):
        eager.gpu.invocation_seconds([small], "cuda-graph")


def test_eager_is_the_host_at_batch_one_and_the_kernels_at_scale(a100) -> None:
    space = load_space("lm-shakespeare").restricted(["fp32"])
    arch = space.largest()
    km = model_for(a100).gpu.model
    for w, host_bound in ((space.workload, True), (Workload(64, 256, 0), False)):
        gl = GpuLatency(km, w)
        kernels = gl.kernel_seconds([arch])[0]
        ops = np.asarray([o for _, o in kernel_invocations(arch, w)], dtype=float)
        host = ops * a100.overhead("point")
        assert (host > kernels).all() if host_bound else (kernels > host).all(), (w, kernels.sum(), host.sum())
        eager = gl.invocation_seconds([arch], "eager")[0]
        assert np.allclose(eager, host if host_bound else kernels)  # the longer of the two, per call


@pytest.mark.parametrize("space_name, precision", [("lm-shakespeare", "bf16"), ("folio-translation", "fp32")])
def test_phases_are_the_calls(a100, space_name: str, precision: str) -> None:
    space = load_space(space_name)
    m = model_for(a100.with_runtime("cuda-graphs"), space_name)
    arch = space.restricted([precision]).largest()
    (prefill, per_token), = m.phases([arch])
    calls = m.gpu.invocation_seconds([arch], "cuda-graphs")[0]
    assert len(calls) == m.workload.gen_tokens + (1 if arch.kind == "decoder" else 0)
    assert prefill == pytest.approx(calls[0]) and per_token == pytest.approx(calls[1:].mean())


def test_what_the_tables_do_not_time_says_so_and_bad_workloads_are_refused() -> None:
    from nas import api
    from space.errors import UserError
    space = load_space("lm-shakespeare")
    int8, bf16 = space.restricted(["int8"]).largest(), space.restricted(["bf16"]).largest()
    got = api.predict("a100", [int8, bf16])
    assert [p.source for p in got] == ["analytic", "kernels"]  # int8 (CPU-only quantization): the roofline
    assert all(p.prefill_s > 0 and p.decode_per_token_s > 0 for p in got)
    with pytest.raises(UserError, match="context of 999 tokens"):  # before any lookup: one line, not a traceback
        api.predict("a100", [load_space("folio-translation").largest()], workload="len=16,gen=999")


def test_a_runtime_the_profile_lacks_is_refused() -> None:
    with pytest.raises(HardwareError, match="cuda-graphs.*CUDA graphs are for GPUs"):
        load_hardware("xeon-2vcpu").with_runtime("cuda-graphs")
    base = load_hardware("a100").to_dict()
    for change, message in [({"runtimes": ["eager", "tensorrt"]}, "runtimes="),
                            ({"graph_launch": None}, "needs graph_launch"),
                            ({"device": "cpu", "kind": "cpu"}, "cuda-graphs needs device: cuda")]:
        d = {**base, **change}
        if d.get("graph_launch") is None:
            d.pop("graph_launch")
        with pytest.raises(HardwareError, match=message):
            hardware_from_dict(d, "test.yaml")


def test_the_runtime_travels_to_the_record_and_the_card(tiny_trained: Path, tmp_path) -> None:
    from nas import api
    run = api.search("a100", "4ms", space=tiny_trained / "tiny.yaml", supernet=tiny_trained / "sn", iterations=6,
                     eval_batches=1, out=tmp_path / "run", runtime="cuda-graphs",
                     options={"population": 4, "sample_size": 2}, progress=False)
    record = json.loads((run.run_dir / "run.json").read_text())
    assert record["runtime"] == "cuda-graphs" and record["latency_source"] == "kernels"
    card = api.export(run.run_dir, out=tmp_path / "model").card
    assert card.runtime == "cuda-graphs" and card.latency_source == "kernels"
    assert "cuda-graphs runtime" in (tmp_path / "model" / "README.md").read_text()
    eager = api.search("a100", "4ms", space=tiny_trained / "tiny.yaml", supernet=tiny_trained / "sn", iterations=6,
                       eval_batches=1, out=tmp_path / "run-eager", options={"population": 4, "sample_size": 2},
                       progress=False)
    assert eager.record.runtime == "eager"
    by_id = {t["arch_id"]: t["latency_s"] for t in eager.trials}
    shared = [t for t in run.trials if t["arch_id"] in by_id]
    assert shared and all(t["latency_s"] < by_id[t["arch_id"]] for t in shared)


def test_cli_names_the_runtime(nas_cli, tmp_path) -> None:
    sample = nas_cli(tmp_path, "space", "sample", "lm-shakespeare", "-n", "2", "--seed", "3")
    arch_file = tmp_path / "a.yaml"
    arch_file.write_text(sample.stdout)
    r = nas_cli(tmp_path, "predict", "--hardware", "a100", "--runtime", "cuda-graphs", "--arch", str(arch_file))
    assert r.returncode == 0, r.stderr
    assert "cuda-graphs runtime" in r.stdout and "kernels" in r.stdout
    bad = nas_cli(tmp_path, "predict", "--hardware", "xeon-2vcpu", "--runtime", "cuda-graphs", "--arch", str(arch_file))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "CUDA graphs are for GPUs" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    show = nas_cli(tmp_path, "hardware", "show", "a100")
    assert "runtimes: eager, cuda-graphs (default eager)" in show.stdout and "graph launch" in show.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA-graph capture needs a CUDA device (none here)")
def test_a_forward_pass_replays_from_a_cuda_graph() -> None:
    """The precondition of the cuda-graphs runtime: the exported model's forward pass has no host
    sync, so it can be captured once and replayed with the same result."""
    from supernet.subnet import SubTransformer
    arch = load_space("lm-shakespeare").smallest()
    model = SubTransformer(arch).reset_parameters(0).cuda().eval()
    tokens = torch.randint(0, 256, (1, 32), device="cuda")
    with torch.inference_mode():
        want = model(tokens)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            model(tokens)  # warm-up on a side stream, as capture requires
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = model(tokens)
        graph.replay()
        torch.cuda.synchronize()
    assert torch.allclose(out, want, atol=1e-5)
