"""Precision as a search dimension, and deployable exports: every precision runs close to fp32,
the fitness at int8 is the exported int8 model's loss, the space and the hardware agree on what
runs, and the ONNX graph gives PyTorch's logits."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from latency.hardware import load_hardware
from nas import api
from space import PRECISIONS, Arch, Workload, analytic_cost, load_space
from supernet.evaluate import Evaluator
from supernet.subnet import SubTransformer, extract, load, save
from tests.conftest import tiny_space

# Largest |logit - fp32 logit| / largest |fp32 logit| allowed per precision on a tiny model: int8
# quantizes weights (per channel) and activations (per call) to 8 bits, bf16 keeps 8 bits of
# mantissa, fp16 11: a few percent, a few percent, a fraction of one.
TOLERANCE = {"int8": 0.05, "bf16": 0.05, "fp16": 0.01}


def _spaces():
    return {k: dataclasses.replace(tiny_space(k), precision=PRECISIONS) for k in ("decoder", "encoder-decoder")}


@pytest.mark.parametrize("kind", ["decoder", "encoder-decoder"])
@pytest.mark.parametrize("precision", ["int8", "bf16", "fp16"])
def test_every_precision_runs_close_to_fp32(kind: str, precision: str) -> None:
    space = _spaces()[kind]
    arch = space.sample(3).with_precision("fp32")
    base = SubTransformer(arch).reset_parameters(0).eval()
    low = SubTransformer(arch.with_precision(precision))
    low.load_state_dict(base.state_dict())
    low.eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 20, (2, 12), generator=g)
    kw = {"src": torch.randint(0, 20, (2, 9), generator=g)} if kind == "encoder-decoder" else {}
    with torch.inference_mode():
        want, got = base(x, **kw), low(x, **kw).float()
    assert torch.isfinite(got).all()
    assert (got - want).abs().max() / want.abs().max() < TOLERANCE[precision]
    assert not torch.equal(got, want)  # it does run at its precision


def test_int8_fitness_is_the_exported_int8_models_loss(tmp_path, tiny_trained) -> None:
    base = api.load_space(tiny_trained / "tiny.yaml")
    space = dataclasses.replace(base, precision=("fp32", "int8"))
    sup, record = api.load_supernet(tiny_trained / "sn")
    sup.space = space  # the same weights, searched at two precisions
    arch = space.sample(1).with_precision("int8")
    val = [(torch.randint(0, 250, (4, 32), generator=torch.Generator().manual_seed(s)),
            torch.randint(0, 250, (4, 32), generator=torch.Generator().manual_seed(s + 9))) for s in range(2)]
    fitness = Evaluator(sup, val).loss(arch)
    fp32 = Evaluator(sup, val).loss(arch.with_precision("fp32"))
    save(extract(sup, arch), tmp_path / "m")
    again = load(tmp_path / "m")
    assert again.arch.precision == "int8" and Evaluator(again, val).loss(arch) == pytest.approx(fitness, abs=1e-5)
    assert fitness != fp32  # quantization changes the loss a little ...
    assert abs(fitness - fp32) < 0.05  # ... not much
    from safetensors.torch import load_file
    stored = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert any(t.dtype == torch.int8 for t in stored.values())  # written at its precision


def test_space_and_hardware_decide_the_precisions() -> None:
    lm = load_space("lm-shakespeare")
    assert lm.precision == ("fp32", "int8", "bf16", "fp16")
    assert load_hardware("xeon-2vcpu").precisions == ("fp32", "int8")
    assert load_hardware("a100").precisions == ("fp32", "bf16", "fp16")
    cpu, gpu = lm.restricted(("fp32", "int8")), lm.restricted(load_hardware("a100").precisions)
    assert {cpu.sample(i).precision for i in range(40)} == {"fp32", "int8"}
    assert {gpu.sample(i).precision for i in range(40)} == {"fp32", "bf16", "fp16"}
    a = cpu.sample(7)
    assert all(cpu.contains(cpu.mutate(a, s, prob=0.9)) for s in range(20))
    assert {cpu.mutate(a, s, prob=0.9).precision for s in range(20)} == {"fp32", "int8"}
    assert lm.size() == 4 * dataclasses.replace(lm, precision=("fp32",)).size()
    from nas.search.optuna_space import arch_params, suggest_arch
    from optuna.trial import FixedTrial
    assert suggest_arch(FixedTrial(arch_params(cpu, a)[0]), cpu) == a


def test_cost_knows_the_bytes_of_each_precision() -> None:
    lm = load_space("lm-shakespeare")
    a = lm.largest()
    w = Workload(1, 64, 32)
    fp32, int8, bf16 = (analytic_cost(a.with_precision(p), w) for p in ("fp32", "int8", "bf16"))
    assert fp32.params == int8.params and fp32.flops == int8.flops and fp32.ops == int8.ops
    assert int8.bytes < bf16.bytes < fp32.bytes  # weights of 1, 2, 4 bytes per value
    assert Arch.from_json(a.with_precision("int8").to_json()).precision == "int8"
    assert "precision" not in a.to_dict()  # fp32 archs keep the ids they always had


def test_search_on_the_cpu_explores_int8(tiny_trained, tmp_path) -> None:
    base = api.load_space(tiny_trained / "tiny.yaml")
    (tmp_path / "p.yaml").write_text((tiny_trained / "tiny.yaml").read_text() + "precision: [fp32, int8]\n")
    from latency.model import latency_model
    space = api.load_space(tmp_path / "p.yaml")
    model = latency_model(load_hardware("xeon-2vcpu"), space, space.workload)
    assert model.source == "analytic" and base.precision == ("fp32",)
    i8 = space.largest().with_precision("int8")
    assert model.predict([i8])[0][0] < model.predict([space.largest()])[0][0]  # fewer bytes to move


# ---- ONNX ------------------------------------------------------------------------------------------

@pytest.mark.slow  # exports through torch.export (~10 s each)
@pytest.mark.parametrize("kind", ["decoder", "encoder-decoder"])
def test_onnx_graph_gives_pytorchs_logits(kind: str, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from supernet.onnx_export import export_onnx
    space = _spaces()[kind]
    model = SubTransformer(space.sample(2).with_precision("fp32")).reset_parameters(0).eval()
    exported = export_onnx(model, tmp_path, length=20)
    assert exported.path.is_file() and exported.precision == "fp32" and exported.max_abs_diff < 1e-4
    q = SubTransformer(model.arch.with_precision("int8"))
    q.load_state_dict(model.state_dict())
    q8 = export_onnx(q.eval(), tmp_path / "int8", length=20)
    assert q8.precision == "int8" and q8.max_abs_diff < 0.5  # ONNX Runtime quantizes activations its own way


@pytest.mark.slow
def test_export_onnx_and_measure_it(tiny_trained, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    space = api.load_space(tiny_trained / "tiny.yaml")
    res = api.export(supernet=tiny_trained / "sn", arch=space.sample(4), out=tmp_path / "m", onnx=True)
    assert res.card.onnx.max_abs_diff < 1e-4 and (tmp_path / "m" / "model.onnx").is_file()
    assert "ONNX: model.onnx" in (tmp_path / "m" / "README.md").read_text()
    m = api.measure(tmp_path / "m", backend="onnxruntime", rounds=3)
    assert m.median_s > 0 and m.backend == "onnxruntime" and m.workload == "batch=1,len=16,gen=0"


def test_the_one_line_summary_tells_precisions_apart() -> None:
    from space.display import arch_summary
    arch = tiny_space("decoder").largest()
    lines = {arch_summary(arch.with_precision(p)) for p in PRECISIONS}
    assert len(lines) == len(PRECISIONS) and arch_summary(arch.with_precision("int8")).endswith(" int8")
