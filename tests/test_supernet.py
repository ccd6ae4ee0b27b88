"""The SuperTransformer's invariants on tiny supernets (width 16-32, 2 layers)."""
from __future__ import annotations

import random

import pytest
import torch

from space import ATTENTION_TYPES, Arch, Layer, Stack, analytic_cost
from supernet.attention import ATTENTION, kernels
from supernet.card import ModelCard
from supernet.functional import Cache
from supernet.model import SuperTransformer
from supernet.subnet import SubTransformer, extract, load, save
from tests.conftest import ALL, CAUSAL, KINDS

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
        arch = Arch(a.kind, a.head_dim, a.vocab_size, a.max_len, classes=a.classes, **stacks)
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
    for kind in KINDS:
        types = ALL if kind == "encoder" else CAUSAL if kind == "decoder" else ALL
        for attn in types:
            yield kind, attn
        yield kind, "mixed"


@pytest.mark.parametrize("kind, attn", list(_cases()))
def test_extraction_equals_supernet(kind: str, attn: str, tiny_spaces, tiny_supernets) -> None:
    space, model = tiny_spaces[kind], tiny_supernets[kind]
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
    assert ATTENTION.names() == list(ATTENTION_TYPES) == list(kernels())  # the space's order, one kernel each


@pytest.mark.parametrize("attn", CAUSAL)
def test_causality(attn: str, tiny_spaces, tiny_supernets) -> None:
    space, model = tiny_spaces["decoder"], tiny_supernets["decoder"]
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
def test_cached_decoding_equals_full_forward(kind: str, attn: str, tiny_spaces, tiny_supernets) -> None:
    space = tiny_spaces[kind]
    arch = space.sample(5) if attn == "mixed" else only(space, attn, 2)
    sub = extract(tiny_supernets[kind], arch).eval()
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


def test_gradients_reach_only_active_slices(tiny_spaces) -> None:
    model = SuperTransformer(tiny_spaces["encoder"], seed=3)
    arch = Arch("encoder", 8, 23, 96, encoder=Stack(16, (Layer("linformer", 2, 1, 16, proj_len=4),)), classes=3)
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


def test_padding_mask_no_nan_and_no_leak(tiny_spaces, tiny_supernets) -> None:
    space, model = tiny_spaces["encoder"], tiny_supernets["encoder"]
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


def test_save_load_round_trip(tmp_path, tiny_spaces, tiny_supernets) -> None:
    arch = tiny_spaces["encoder-decoder"].sample(9)
    sub = extract(tiny_supernets["encoder-decoder"], arch)
    save(sub, tmp_path / "m", ModelCard(arch=arch, params=0, hardware="xeon-2vcpu"))
    again = load(tmp_path / "m")
    x, kw = _inputs(arch)
    with torch.no_grad():
        assert torch.equal(sub(x, **kw), again(x, **kw))
    assert again.arch == arch and again.card.hardware == "xeon-2vcpu"
    assert again.card.params == sum(p.numel() for p in sub.parameters())


def test_forward_rejects_foreign_arch(tiny_spaces, tiny_supernets) -> None:
    from space import ArchError
    foreign = tiny_spaces["decoder"].largest()
    big = Arch(foreign.kind, 8, 23, 96, decoder=Stack(64, foreign.decoder.layers))
    with pytest.raises(ArchError, match="decoder.embed=64 is not in the space"):
        tiny_supernets["decoder"](torch.zeros(1, 4, dtype=torch.long), big)


@pytest.mark.parametrize("name", ATTENTION.names())
class TestKernelContract:
    """What every registered attention type promises, checked on raw heads (B=2, h=4, kv=2, hd=8)."""

    def layer(self, name: str) -> Layer:
        param = ATTENTION_TYPES[name].param
        return Layer(name, 4, 2, 16, **({param: {"window": 5, "proj_len": 8}[param]} if param else {}))

    def heads(self, t: int = 12):
        g = torch.Generator().manual_seed(0)
        q = torch.randn(2, 4, t, 8, generator=g)
        k, v = torch.randn(2, 2, t, 8, generator=g), torch.randn(2, 2, t, 8, generator=g)
        return q, k, v

    def extra(self, name: str, layer: Layer) -> dict:
        kernel = ATTENTION.create(name)
        shapes = kernel.extra_shapes(4, 8, 96, layer.window or layer.proj_len)
        extra = {n: torch.zeros(s) for n, s in shapes.items()}
        kernel.init_extra(extra, generator=torch.Generator().manual_seed(1))
        return kernel.slice_extra(extra, layer)

    def test_shape_and_padding(self, name: str) -> None:
        kernel, layer = ATTENTION.create(name), self.layer(name)
        q, k, v = self.heads()
        keep = torch.ones(2, 12, dtype=torch.bool)
        keep[1, 9:] = False
        causal = ATTENTION_TYPES[name].causal
        out = kernel.attend(q, k, v, self.extra(name, layer), layer, causal=causal, keep=None if causal else keep)
        assert out.shape == q.shape and torch.isfinite(out).all()

    def test_incremental_equals_whole(self, name: str) -> None:
        kernel, layer = ATTENTION.create(name), self.layer(name)
        if not ATTENTION_TYPES[name].causal:
            with pytest.raises(NotImplementedError):
                kernel.step(*self.heads(), {}, layer, None)
            return
        q, k, v = self.heads(t=70)  # past the linear kernel's chunk of 64 and any window
        extra = self.extra(name, layer)
        whole = kernel.attend(q, k, v, extra, layer, causal=True)
        out, state = kernel.step(q[:, :, :9], k[:, :, :9], v[:, :, :9], extra, layer, None)
        parts = [out]
        for t in range(9, 70):
            out, state = kernel.step(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1], extra, layer, state)
            parts.append(out)
        assert torch.allclose(whole, torch.cat(parts, 2), atol=1e-5)


def test_type_adapters_fold_into_the_extracted_model(tiny_spaces) -> None:
    """Linear attention's supernet-only adapter (its own map of the shared queries and keys) starts as
    the identity, changes what linear layers compute once trained, and folds into the extracted
    model: same outputs, plain shapes, and a state dict without it."""
    from supernet.model import SuperTransformer
    space = tiny_spaces["decoder"]
    plain, adapted = SuperTransformer(space, seed=1), SuperTransformer(space, seed=1, adapters=True)
    names = {n for n, _ in adapted.named_parameters()} - {n for n, _ in plain.named_parameters()}
    assert names and all("linear_adapter" in n or "retention_adapter" in n for n in names)  # both read Q, K through phi
    arch = only(space, "linear", 0)
    x, kw = _inputs(arch, seed=0)
    with torch.no_grad():
        assert torch.equal(plain(x, arch, **kw), adapted(x, arch, **kw))  # zero: the identity
        g = torch.Generator().manual_seed(0)
        for n, p in adapted.named_parameters():
            if "linear_adapter" in n:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
        want = adapted(x, arch, **kw)
        assert not torch.allclose(want, plain(x, arch, **kw), atol=1e-3)
        sub = extract(adapted, arch)
        assert torch.allclose(want, sub(x, **kw), atol=1e-5, rtol=0)
    assert set(sub.state_dict()) == set(extract(plain, arch).state_dict())
    soft = only(space, "softmax", 0)  # other types never read it
    with torch.no_grad():
        assert torch.equal(plain(x, soft, **kw), adapted(x, soft, **kw))
