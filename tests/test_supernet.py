"""The SuperTransformer's invariants on tiny supernets (width 16-32, 2 layers)."""
from __future__ import annotations

import random

import pytest
import torch

from space import ATTENTION_TYPES, Arch, Layer, Stack, analytic_cost, space_from_dict
from supernet.attention import kernels
from supernet.functional import Cache
from supernet.model import SuperTransformer
from supernet.subnet import SubTransformer, extract, load, save

CAUSAL = [t for t, s in ATTENTION_TYPES.items() if s.causal]
ALL = list(ATTENTION_TYPES)
ATTN = {"softmax": {}, "window": {"window": [3, 5]}, "linear": {}, "linformer": {"proj_len": [4, 8]},
        "fastformer": {}}


def _stack(types, cross=False):
    d = {"embed": [16, 32], "depth": [1, 2], "heads": [2, 4], "kv_heads": [1, 2, 4], "ffn_ratio": [1, 2],
         "attention": {t: ATTN[t] for t in types}}
    if cross:
        d.update(cross_layers=[1, 2], cross_heads=[1, 2])
    return d


def tiny(kind: str):
    base = {"name": f"tiny-{kind}", "head_dim": 8, "vocab_size": 23, "max_len": 96, "kind": kind}
    if kind == "decoder":
        return space_from_dict({**base, "decoder": _stack(CAUSAL)})
    if kind == "encoder":
        return space_from_dict({**base, "encoder": _stack(ALL)})
    return space_from_dict({**base, "encoder": _stack(ALL), "decoder": _stack(CAUSAL, cross=True)})


SPACES = {k: tiny(k) for k in ("decoder", "encoder", "encoder-decoder")}
MODELS = {k: SuperTransformer(s, seed=1) for k, s in SPACES.items()}


def only(space, attn: str, seed: int = 0) -> Arch:
    """A random arch of `space` whose every layer (of the stack that allows it) uses `attn`."""
    rng = random.Random(seed)
    while True:
        a = space.sample(rng)
        stacks = {}
        for name, stack in a.stacks:
            if attn in dict(getattr(space, name).attention):
                stack = Stack(stack.embed, tuple(_retype(layer, attn, rng, dict(getattr(space, name).attention)[attn])
                                                 for layer in stack.layers))
            stacks[name] = stack
        arch = Arch(a.kind, a.head_dim, a.vocab_size, a.max_len, **stacks)
        if space.contains(arch):
            return arch


def _retype(layer: Layer, attn: str, rng, params) -> Layer:
    param = ATTENTION_TYPES[attn].param
    kw = {k: v for k, v in layer.to_dict().items() if k not in ("attn", "window", "proj_len")}
    return Layer(attn=attn, **kw, **({param: rng.choice(params)} if param else {}))


def _inputs(arch: Arch, t: int = 20, b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, arch.vocab_size, (b, t), generator=g)
    kw = {}
    if arch.kind == "encoder-decoder":
        kw["src"] = torch.randint(0, arch.vocab_size, (b, 17), generator=g)
    return x, kw


def _cases():
    for kind, space in SPACES.items():
        types = ALL if kind == "encoder" else CAUSAL if kind == "decoder" else ALL
        for attn in types:
            yield kind, attn
        yield kind, "mixed"


@pytest.mark.parametrize("kind, attn", list(_cases()))
def test_extraction_equals_supernet(kind: str, attn: str) -> None:
    space, model = SPACES[kind], MODELS[kind]
    for seed in range(3):
        arch = space.sample(seed) if attn == "mixed" else only(space, attn, seed)
        x, kw = _inputs(arch, seed=seed)
        with torch.no_grad():
            want = model(x, arch, **kw)
            got = extract(model, arch)(x, **kw)
        assert torch.allclose(want, got, atol=1e-5, rtol=0), (want - got).abs().max()
        assert sum(p.numel() for p in SubTransformer(arch).parameters()) == analytic_cost(arch, _wl(arch)).params


def _wl(arch):
    from space import Workload
    return Workload(1, 8)


def test_every_type_is_registered() -> None:
    assert set(kernels()) == set(ATTENTION_TYPES)


@pytest.mark.parametrize("attn", CAUSAL)
def test_causality(attn: str) -> None:
    space, model = SPACES["decoder"], MODELS["decoder"]
    arch = only(space, attn, 1)
    x, _ = _inputs(arch, t=30)
    y = x.clone()
    y[:, 20:] = (y[:, 20:] + 1) % arch.vocab_size  # change the future
    with torch.no_grad():
        a, b = model(x, arch), model(y, arch)
    assert torch.equal(a[:, :20], b[:, :20])
    assert not torch.allclose(a[:, 20:], b[:, 20:])


@pytest.mark.parametrize("kind", ["decoder", "encoder-decoder"])
@pytest.mark.parametrize("attn", CAUSAL + ["mixed"])
def test_cached_decoding_equals_full_forward(kind: str, attn: str) -> None:
    space = SPACES[kind]
    arch = space.sample(5) if attn == "mixed" else only(space, attn, 2)
    sub = extract(MODELS[kind], arch).eval()
    x, kw = _inputs(arch, t=80)  # longer than the linear kernel's 64-token chunk and any window
    with torch.no_grad():
        full = sub(x, **kw)
        cache = Cache()
        parts = [sub(x[:, :11], cache=cache, **kw)]  # a prefill, then one token at a time
        parts += [sub(x[:, t:t + 1], cache=cache, **kw) for t in range(11, 80)]
    assert torch.allclose(full, torch.cat(parts, 1), atol=1e-5, rtol=0)
    assert cache.pos == 80
    if attn == "window":  # the window cache stays bounded
        assert all(s["self"]["k"].shape[2] < max(5, 11) for s in cache.layers.values())


def test_gradients_reach_only_active_slices() -> None:
    space, model = SPACES["encoder"], SuperTransformer(SPACES["encoder"], seed=3)
    arch = Arch("encoder", 8, 23, 96, encoder=Stack(16, (Layer("linformer", 2, 1, 16, proj_len=4),)))
    x, _ = _inputs(arch)
    model(x, arch).square().mean().backward()
    blk = model.encoder.layers[0]
    assert blk.q.weight.grad[:16, :16].abs().sum() > 0
    assert blk.q.weight.grad[16:].abs().sum() == 0 and blk.q.weight.grad[:, 16:].abs().sum() == 0
    assert blk.k.weight.grad[8:].abs().sum() == 0  # one K/V head of 8
    assert blk.fc1.weight.grad[16:].abs().sum() == 0
    assert blk.linformer.E.grad[:4].abs().sum() > 0 and blk.linformer.E.grad[4:].abs().sum() == 0
    assert blk.fastformer.wq.grad is None  # another type's own parameters are untouched
    assert model.encoder.layers[1].q.weight.grad is None  # the inactive second layer
    assert model.encoder.tok.weight.grad[:, 16:].abs().sum() == 0


def test_padding_mask_no_nan_and_no_leak() -> None:
    space, model = SPACES["encoder"], MODELS["encoder"]
    for attn in ALL:
        arch = only(space, attn, 4)
        x, _ = _inputs(arch, t=12)
        keep = torch.ones_like(x, dtype=torch.bool)
        keep[0, 8:] = False
        y = x.clone()
        y[0, 8:] = 0  # padding content must not matter
        with torch.no_grad():
            a, b = model(x, arch, keep=keep), model(y, arch, keep=keep)
        assert torch.isfinite(a).all()
        assert torch.allclose(a[0, :8], b[0, :8], atol=1e-5), attn


def test_save_load_round_trip(tmp_path) -> None:
    arch = SPACES["encoder-decoder"].sample(9)
    sub = extract(MODELS["encoder-decoder"], arch)
    save(sub, tmp_path / "m", meta={"note": "x"})
    again = load(tmp_path / "m")
    x, kw = _inputs(arch)
    with torch.no_grad():
        assert torch.equal(sub(x, **kw), again(x, **kw))
    assert again.arch == arch and again.meta == {"note": "x"}


def test_forward_rejects_foreign_arch() -> None:
    from space import ArchError
    foreign = SPACES["decoder"].largest()
    big = Arch(foreign.kind, 8, 23, 96, decoder=Stack(64, foreign.decoder.layers))
    with pytest.raises(ArchError, match="decoder.embed=64 is not in the space"):
        MODELS["decoder"](torch.zeros(1, 4, dtype=torch.long), big)
