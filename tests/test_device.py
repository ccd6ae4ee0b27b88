"""Devices, precisions, tokenizers and the memory check: the device-agnostic paths on this CPU,
the CUDA paths where a GPU is present (skipped with the reason here)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nas import api
from space.errors import UserError
from supernet.corpus.tokenizer import (ByteTokenizer, load_tokenizer_file, parse_spec, special_ids,
                                       tokenizer_from_dict, train_bpe)
from supernet.device import autocast, default_precision, resolve_device, resolve_precision
from supernet.subnet import SubTransformer
from supernet.train import Runtime, train_fixed
from tests.conftest import run_nas
from tests.test_train import Counting

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


def test_device_resolution_here() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == (torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))
    assert default_precision(torch.device("cpu")) == "fp32"  # bf16 autocast is ~3x slower on this CPU
    with pytest.raises(UserError, match="choose auto, cpu, cuda"):
        resolve_device("tpu")
    with pytest.raises(UserError, match="choose one of fp32, bf16, fp16"):
        resolve_precision("fp8", torch.device("cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_where_there_is_none(tmp_path) -> None:
    with pytest.raises(UserError, match="no CUDA device"):
        resolve_device("cuda:0")
    r = run_nas(tmp_path, "evaluate", "--supernet", "x", "--arch", "y.yaml", "--device", "cuda")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_precisions_train_and_the_loss_falls(tiny_spaces, precision: str) -> None:
    arch = tiny_spaces["decoder"].largest()
    model = SubTransformer(arch).reset_parameters(0)
    from supernet.config import TrainConfig
    cfg = TrainConfig(steps=30, batch_size=8, seq_len=24, lr=1e-2, warmup=3)
    losses = train_fixed(model, Counting(), cfg, runtime=Runtime(precision=precision))
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 master weights


def test_autocast_changes_the_compute_dtype() -> None:
    lin = torch.nn.Linear(4, 4)
    with autocast(torch.device("cpu"), "bf16"):
        assert lin(torch.randn(2, 4)).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert lin(torch.randn(2, 4)).dtype == torch.float32


def test_explicit_cpu_and_auto_train_the_same(tiny_work, tmp_path) -> None:
    runs = {}
    for device in ("cpu", "auto"):
        res = api.train_supernet(tiny_work / "tiny.yaml", out=tmp_path / device, data=tiny_work / "corpus", steps=3,
                                 batch_size=4, seq_len=32, device=device, progress=False)
        runs[device] = res
    if not torch.cuda.is_available():
        assert runs["auto"].device == "cpu" and runs["auto"].precision == "fp32"
        assert runs["cpu"].val_largest == runs["auto"].val_largest


# ---- the memory check ------------------------------------------------------------------------------

def test_memory_estimate_and_a_clear_stop(tmp_path) -> None:
    plan = api.plan_training("lm-shakespeare", out=tmp_path / "a", preset="quick", device="cpu")
    est = plan.memory
    assert est.parameters > 4.8e6 and est.optimizer == 2 * est.params and est.activations > 0
    assert est.total < 2**30  # the quick preset on this space: well under a GiB
    with pytest.raises(UserError, match="--grad-accum 2 .* --checkpointing"):
        api.plan_training("gpt2-small", out=tmp_path / "b", data=tmp_path, steps=1, batch_size=4096, seq_len=1024,
                          device="cpu")
    ckpt = api.plan_training("gpt2-small", out=tmp_path / "c", steps=1, batch_size=8, seq_len=1024, device="cpu",
                             checkpointing=True, check_memory=False).memory
    full = api.plan_training("gpt2-small", out=tmp_path / "c", steps=1, batch_size=8, seq_len=1024, device="cpu",
                             check_memory=False).memory
    accum = api.plan_training("gpt2-small", out=tmp_path / "c", steps=1, batch_size=8, seq_len=1024, device="cpu",
                              grad_accum=4, check_memory=False).memory
    assert ckpt.activations < full.activations / 3 and accum.activations < full.activations / 3
    assert ckpt.params == full.params  # weights, gradients and AdamW state do not shrink


def test_checkpointing_gives_the_same_gradients(tiny_spaces, tiny_supernets) -> None:
    from supernet.loss import lm_loss
    space, model = tiny_spaces["decoder"], tiny_supernets["decoder"]
    arch = space.largest()
    x = torch.randint(0, 20, (2, 12))
    grads = []
    for flag in (False, True):
        model.zero_grad()
        lm_loss(model(x[:, :-1], arch, checkpoint=flag), x[:, 1:]).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])
    model.zero_grad()


# ---- tokenizers ------------------------------------------------------------------------------------

TEXTS = ["To be, or not to be, that is the question:", "Whether 'tis nobler in the mind to suffer",
         "The slings and arrows of outrageous fortune,"] * 20


def test_bpe_round_trip_and_specials_last() -> None:
    tok = train_bpe(TEXTS, 300)
    assert tok.vocab_size == 300 and (tok.pad_id, tok.bos_id, tok.eos_id) == special_ids(300) == (297, 298, 299)
    for text in ("To be, or not to be", "ünïcode 漢字 and bytes \x00\x7f", ""):
        ids = tok.encode(text)
        assert tok.decode(ids) == text and (ids < tok.pad_id).all()
    again = tokenizer_from_dict(tok.to_dict())
    assert again.encode("the question").tolist() == tok.encode("the question").tolist()
    assert len(tok.encode("To be, or not to be")) < len("To be, or not to be")  # it learned merges


def test_tokenizer_specs_and_the_vocabulary_check(tmp_path) -> None:
    assert parse_spec("bytes", 259) == ("bytes", None)
    assert parse_spec("bpe", 8000) == ("bpe", 8000) and parse_spec("bpe:512", 259) == ("bpe", 512)
    with pytest.raises(UserError, match="write bpe:N"):
        parse_spec("bpe:many", 259)
    with pytest.raises(UserError, match="choose bytes, bpe:N"):
        parse_spec("sentencepiece", 259)
    with pytest.raises(UserError, match="has vocab_size 259"):
        api.plan_training("lm-shakespeare", out=tmp_path / "x", tokenizer="bpe:8000")
    with pytest.raises(UserError, match="has vocab_size 50,257"):
        api.plan_training("gpt2-small", out=tmp_path / "y", tokenizer="bytes")
    assert api.load_space("gpt2-small").tokenizer == "bpe" and api.load_space("lm-shakespeare").tokenizer == "bytes"
    own = train_bpe(TEXTS, 280).tok
    own_path = tmp_path / "tokenizer.json"
    from tokenizers import Tokenizer
    plain = Tokenizer.from_str(own.to_str())
    plain.save(str(own_path))
    with pytest.raises(UserError, match="already has a token '<pad>'"):
        load_tokenizer_file(own_path)


BPE_SPACE = """\
name: tiny-bpe
kind: decoder
head_dim: 8
vocab_size: 300
max_len: 64
tokenizer: bpe
decoder: {embed: [16, 32], depth: [1, 2], heads: [1, 2], ffn_ratio: [1, 2], attention: {softmax: {}, linear: {}}}
"""


def test_bpe_saved_with_the_supernet_and_the_export_and_used_by_generate(tiny_work, tmp_path) -> None:
    (tmp_path / "bpe.yaml").write_text(BPE_SPACE)
    res = api.train_supernet(tmp_path / "bpe.yaml", out=tmp_path / "sn", data=tiny_work / "corpus", steps=4,
                             batch_size=4, seq_len=32, progress=False)
    saved = res.record.tokenizer
    assert saved["type"] == "bpe" and saved["vocab_size"] == 300
    tok = tokenizer_from_dict(saved)
    model = api.export(supernet=tmp_path / "sn", arch=api.load_space(tmp_path / "bpe.yaml").smallest(),
                       out=tmp_path / "model")
    assert (tmp_path / "model" / "tokenizer.json").is_file() and model.card.tokenizer["file"] == "tokenizer.json"
    text = api.generate(tmp_path / "model", "to be", tokens=12, seed=1)
    assert isinstance(text, str) and text  # decoded by the BPE, not as bytes
    from supernet.corpus.tokenizer import load_beside
    assert load_beside(model.card.tokenizer, tmp_path / "model").encode("question").tolist() == \
        tok.encode("question").tolist()
    (tmp_path / "model" / "tokenizer.json").unlink()
    with pytest.raises(UserError, match="tokenizer.json: missing"):
        api.generate(tmp_path / "model", "to be")


def test_bytes_stay_the_default(tiny_trained) -> None:
    from supernet.checkpoint import read_record
    assert read_record(tiny_trained / "sn").tokenizer == ByteTokenizer().to_dict()


# ---- CUDA (where a GPU is) ---------------------------------------------------------------------------

@cuda
def test_cuda_training_and_fitness(tiny_work, tmp_path) -> None:
    res = api.train_supernet(tiny_work / "tiny.yaml", out=tmp_path / "sn", data=tiny_work / "corpus", steps=4,
                             batch_size=4, seq_len=32, device="cuda", progress=False)
    assert res.device.startswith("cuda")
    ev = api.supernet_evaluator(tmp_path / "sn", 1, device="cuda")
    cpu = api.supernet_evaluator(tmp_path / "sn", 1, device="cpu", precision="fp32")
    arch = api.load_space(tiny_work / "tiny.yaml").largest()
    assert ev.loss(arch) == pytest.approx(cpu.loss(arch), rel=2e-2)  # bf16 on the GPU against fp32


@cuda
def test_cuda_precisions(tiny_spaces) -> None:
    from supernet.config import TrainConfig
    for precision in ("fp16", "bf16"):
        model = SubTransformer(tiny_spaces["decoder"].largest()).reset_parameters(0)
        losses = train_fixed(model, Counting(), TrainConfig(steps=20, batch_size=8, seq_len=24, lr=1e-2, warmup=3),
                             runtime=Runtime(device=torch.device("cuda"), precision=precision))
        assert losses[-1] < losses[0]


def test_device_option_on_every_model_command() -> None:
    for command in ("train-supernet", "evaluate", "search", "retrain", "generate", "translate"):
        r = run_nas(Path("."), command, "--help")
        assert "--device" in r.stdout, command


def test_emulated_half_precision_on_a_cpu_is_named() -> None:
    from supernet.device import slow_precision_note
    cpu = torch.device("cpu")
    avx2 = {"avx", "avx2", "fma"}
    note = slow_precision_note(cpu, "bf16", avx2)
    assert note and "bf16" in note and "--precision fp32" in note and "\n" not in note
    assert slow_precision_note(cpu, "bf16", avx2 | {"avx512_bf16"}) is None  # native: nothing to say
    assert slow_precision_note(cpu, "fp16", avx2 | {"avx512_bf16"})  # bf16 support is not fp16 support
    assert slow_precision_note(cpu, "fp32", avx2) is None
    assert slow_precision_note(torch.device("meta"), "bf16", avx2) is None  # not a CPU


def test_retraining_accumulates_gradients_and_refuses_ranks(tiny_spaces) -> None:
    """train_fixed honours --grad-accum (micro-batches, one step: the same weights up to rounding)
    and refuses a distributed runtime instead of ignoring it."""
    from supernet.config import TrainConfig
    from supernet.device import Dist
    arch = tiny_spaces["decoder"].largest()
    cfg = TrainConfig(steps=6, batch_size=8, seq_len=24, lr=1e-2, warmup=2)
    whole, split = (SubTransformer(arch).reset_parameters(0) for _ in range(2))
    a = train_fixed(whole, Counting(), cfg)
    b = train_fixed(split, Counting(), cfg, runtime=Runtime(grad_accum=4))
    assert a == pytest.approx(b, rel=1e-4)
    for (n, p), (_, q) in zip(whole.state_dict().items(), split.state_dict().items()):
        assert torch.allclose(p, q, atol=1e-4), n  # (a key bias has no gradient but rounding: Adam scales it)
    with pytest.raises(UserError, match="must divide into 1 ranks x --grad-accum 3"):
        train_fixed(SubTransformer(arch), Counting(), cfg, runtime=Runtime(grad_accum=3))
    with pytest.raises(UserError, match="one process"):
        train_fixed(SubTransformer(arch), Counting(), cfg, runtime=Runtime(dist=Dist(rank=0, world=2)))


def test_retraining_decays_weights_as_the_supernet_loop(tiny_spaces) -> None:
    """train_fixed's AdamW is the supernet loop's: weight decay on matrices, none on norms and biases
    (a norm or bias whose gradient is zero keeps its value, where decay would shrink it)."""
    from supernet.config import TrainConfig
    arch = tiny_spaces["decoder"].largest()
    model = SubTransformer(arch).reset_parameters(0)
    norms = {n: p.detach().clone() for n, p in model.named_parameters() if p.dim() < 2}
    for p in model.parameters():
        if p.dim() < 2:
            p.register_hook(torch.zeros_like)  # a zero gradient: only decay could move them ...
    cfg = TrainConfig(steps=3, batch_size=4, seq_len=16, lr=1e-1, warmup=1, weight_decay=0.5)
    train_fixed(model, Counting(), cfg)
    for n, p in model.named_parameters():
        if n in norms:
            assert torch.equal(p, norms[n]), n  # ... and they are not decayed
