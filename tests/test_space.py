"""The search space: the arch record, membership of every operator's output, size, encoding, cost."""
from __future__ import annotations

import hashlib
import itertools
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from space import (ATTENTION_TYPES, Arch, ArchError, Layer, Stack, Workload, analytic_cost, builtin_spaces,
                   load_archs, load_space, space_from_dict)

SPACES = {name: load_space(name) for name in builtin_spaces()}
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def test_shipped_spaces() -> None:
    assert set(SPACES) >= {"lm-shakespeare", "gpt2-small", "hat-wmt14", "folio-translation"}
    lm = SPACES["lm-shakespeare"]
    assert max(lm.decoder.embed) <= 256 and max(lm.decoder.depth) <= 6
    hat = SPACES["hat-wmt14"]
    assert hat.encoder.embed == (512, 640) and hat.encoder.depth == (6,) and hat.decoder.depth == (1, 2, 3, 4, 5, 6)
    assert hat.encoder.ffn == (1024, 2048, 3072) and hat.decoder.heads == (4, 8)
    assert hat.decoder.cross_layers == (1, 2, 3)


# ---- the record ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SPACES))
@settings(max_examples=30, deadline=None)
@given(seed=seeds)
def test_round_trip(name: str, seed: int) -> None:
    arch = SPACES[name].sample(seed)
    assert Arch.from_json(arch.to_json()) == arch
    assert Arch.from_yaml(arch.to_yaml()) == arch
    assert Arch.from_dict(json.loads(json.dumps(arch.to_dict()))).id == arch.id


def test_id_is_stable_and_content_based() -> None:
    a = SPACES["lm-shakespeare"].largest()
    assert a.id == Arch.from_json(a.to_json()).id and len(a.id) == 16
    assert a.id != SPACES["lm-shakespeare"].smallest().id
    # A value known today: an id that changes silently would orphan every cache and dataset.
    tiny = Arch("decoder", 2, 10, 6, decoder=Stack(4, (Layer("softmax", 1, 1, 8),)))
    assert tiny.id == Arch.from_dict(tiny.to_dict()).id
    canonical = ('{"decoder":{"embed":4,"layers":[{"attn":"softmax","ffn":8,"heads":1,"kv_heads":1}]},'
                 '"head_dim":2,"kind":"decoder","max_len":6,"vocab_size":10}')
    assert tiny.id == hashlib.sha256(canonical.encode()).hexdigest()[:16] == "76a3bdd42c255eff"


def _layer(**kw) -> Layer:
    return Layer(**{"attn": "softmax", "heads": 4, "kv_heads": 2, "ffn": 64, **kw})


@pytest.mark.parametrize("layer, words", [
    (dict(kv_heads=3), ["kv_heads=3", "must divide heads=4", "allowed: 1, 2, 4"]),
    (dict(attn="linformer", proj_len=8), ["attn='linformer'", "causal", "allowed: softmax, window, linear"]),
    (dict(attn="flash"), ["attn='flash'", "allowed: softmax, window, linear, linformer, fastformer"]),
    (dict(attn="window"), ["decoder.layers[0].window", "positive integer"]),
    (dict(window=8), ["window is only for attn='window'"]),
    (dict(heads=0), ["heads=0"]),
    (dict(cross_layers=1), ["cross_layers", "encoder-decoder"]),
])
def test_validation_names_field_and_allowed(layer: dict, words: list[str]) -> None:
    with pytest.raises(ArchError) as e:
        Arch("decoder", 16, 259, 64, decoder=Stack(32, (_layer(**layer),)))
    for word in words:
        assert word in str(e.value)


def test_validation_of_dicts() -> None:
    good = SPACES["lm-shakespeare"].smallest().to_dict()
    with pytest.raises(ArchError, match="unknown key 'colour'"):
        Arch.from_dict({**good, "colour": 1})
    bad_layer = json.loads(json.dumps(good))
    bad_layer["decoder"]["layers"][0]["hedas"] = 2
    with pytest.raises(ArchError, match=r"decoder.layers\[0\]: unknown key 'hedas'"):
        Arch.from_dict(bad_layer)
    with pytest.raises(ArchError, match="needs an encoder stack"):
        Arch.from_dict({**good, "kind": "encoder-decoder"})
    with pytest.raises(ArchError, match="kind='gpt'"):
        Arch.from_dict({**good, "kind": "gpt"})


def test_cross_layers_bounded_by_encoder_depth() -> None:
    enc = Stack(16, (Layer("softmax", 2, 2, 32),))
    dec = Stack(16, (Layer("softmax", 2, 2, 32, cross_layers=2, cross_heads=2),))
    with pytest.raises(ArchError, match="exceeds the encoder depth 1"):
        Arch("encoder-decoder", 8, 10, 16, encoder=enc, decoder=dec)


def test_load_archs_file(tmp_path) -> None:
    s = SPACES["folio-translation"]
    p = tmp_path / "archs.yaml"
    p.write_text(s.sample(1).to_yaml())
    assert load_archs(p) == [s.sample(1)]
    p.write_text("kind: decoder\nhead_dim: 8\nvocab_size: 5\nmax_len: 9\ndecoder: {embed: 8, layers: []}\n")
    with pytest.raises(ArchError, match=f"{p}: decoder.layers: a stack needs at least one layer"):
        load_archs(p)
    with pytest.raises(ArchError, match="no such arch file"):
        load_archs(tmp_path / "missing.yaml")


# ---- the space's operators ----------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SPACES))
@settings(max_examples=60, deadline=None)
@given(seed=seeds, prob=st.floats(0.0, 1.0))
def test_operators_stay_in_space(name: str, seed: int, prob: float) -> None:
    s = SPACES[name]
    a, b = s.sample(seed), s.sample(seed + 1)
    m = s.mutate(a, seed, prob=prob)
    c = s.crossover(a, m, seed)
    d = s.crossover(b, s.largest(), seed + 2)
    for arch in (a, b, m, c, d, s.smallest(), s.largest()):
        assert s.check(arch) is None, s.check(arch)
        if arch.decoder is not None:  # the causal rule
            assert all(ATTENTION_TYPES[layer.attn].causal for layer in arch.decoder.layers)


def test_operators_are_seeded_and_do_something() -> None:
    s = SPACES["lm-shakespeare"]
    assert s.sample(7) == s.sample(7) and s.sample(7) != s.sample(8)
    a = s.sample(1)
    assert s.mutate(a, 3) == s.mutate(a, 3)
    assert s.mutate(a, 3, prob=0.0) == a
    assert len({s.mutate(a, i, prob=0.3).id for i in range(50)}) > 40
    assert s.crossover(a, a, 5) == a
    ids = {s.sample(i).id for i in range(300)}
    assert len(ids) == 300
    types = {layer.attn for i in range(100) for layer in s.sample(i).decoder.layers}
    assert types == {"softmax", "window", "linear"}


def test_foreign_arch_rejected() -> None:
    lm, folio = SPACES["lm-shakespeare"], SPACES["folio-translation"]
    assert not lm.contains(folio.sample(0))
    arch = Arch.from_dict({**lm.largest().to_dict(), "decoder": {"embed": 100, "layers": [
        {"attn": "softmax", "heads": 2, "kv_heads": 2, "ffn": 200}] * 2}})
    assert "decoder.embed=100 is not in the space; allowed: 128, 192, 256" == lm.check(arch)
    with pytest.raises(ArchError, match="not in space 'lm-shakespeare'"):
        lm.mutate(arch, 0)


# ---- size ---------------------------------------------------------------------------------------

TINY = {
    "name": "tiny", "kind": "encoder-decoder", "head_dim": 4, "vocab_size": 7, "max_len": 8,
    "encoder": {"embed": [8, 12], "depth": [1, 2], "heads": [2], "kv_heads": [1, 2], "ffn_ratio": [1, 2],
                "attention": {"softmax": {}, "linformer": {"proj_len": [2]}}},
    "decoder": {"embed": [8], "depth": [1, 2], "heads": [2], "kv_heads": [1, 2], "ffn": [8],
                "cross_layers": [1, 2], "cross_heads": [1], "attention": {"window": {"window": [2]}, "linear": {}}},
}


def _brute_force(s) -> int:
    """Counts every combination of raw values that the space accepts, built independently of the
    space's own sampling code (the ffn list spans every embed's widths, kv every listed value)."""
    def layers(ss, depth, cross):
        ffns = sorted({f for e in ss.embed for f in ss.ffn_choices(e)})
        attn = [dict(attn=t, **({ATTENTION_TYPES[t].param: p} if p else {})) for t, ps in ss.attention
                for p in (ps or (None,))]
        cross_opts = ([dict(cross_layers=c, cross_heads=h) for c in ss.cross_layers for h in ss.cross_heads]
                      if cross else [{}])
        one = [dict(heads=h, kv_heads=k, ffn=f, **a, **c) for h in ss.heads for k in (ss.kv_heads or ss.heads)
               for f in ffns for a in attn for c in cross_opts]
        return itertools.product(one, repeat=depth)

    def stacks(name, cross):
        ss = getattr(s, name)
        for e, d in itertools.product(ss.embed, ss.depth):
            for ls in layers(ss, d, cross):
                yield {"embed": e, "layers": list(ls)}

    seen = set()
    encs = list(stacks("encoder", False)) if s.encoder else [None]
    decs = list(stacks("decoder", s.kind == "encoder-decoder")) if s.decoder else [None]
    for enc, dec in itertools.product(encs, decs):
        d = {"kind": s.kind, "head_dim": s.head_dim, "vocab_size": s.vocab_size, "max_len": s.max_len}
        d.update({k: v for k, v in (("encoder", enc), ("decoder", dec)) if v})
        try:
            arch = Arch.from_dict(d)
        except ArchError:
            continue
        if s.contains(arch):
            seen.add(arch.id)
    return len(seen)


def test_size_equals_brute_force_encoder_decoder() -> None:
    s = space_from_dict(TINY)
    assert s.size() == _brute_force(s)


def test_size_equals_brute_force_decoder() -> None:
    d = {k: v for k, v in TINY.items() if k != "encoder"}
    d = {**d, "kind": "decoder", "decoder": {**TINY["decoder"], "depth": [1, 2, 3], "heads": [1, 2],
                                             "attention": {"softmax": {}, "window": {"window": [2, 4]}}}}
    d["decoder"].pop("cross_layers"), d["decoder"].pop("cross_heads")
    s = space_from_dict(d)
    assert s.size() == _brute_force(s)
    assert s.size() == 9 + 9**2 + 9**3  # (3 head pairs x 3 attention options) per layer


def test_space_yaml_errors() -> None:
    with pytest.raises(ArchError, match="tiny.encoder: unknown key 'widths'"):
        space_from_dict({**TINY, "encoder": {**TINY["encoder"], "widths": [1]}}, where="tiny")
    with pytest.raises(ArchError, match="unknown key 'flash'"):
        space_from_dict({**TINY, "encoder": {**TINY["encoder"], "attention": {"flash": {}}}})
    with pytest.raises(ArchError, match="fastformer: cannot run in a causal"):
        space_from_dict({**TINY, "decoder": {**TINY["decoder"], "attention": {"fastformer": {}}}})
    with pytest.raises(ArchError, match="exactly one of 'ffn'"):
        space_from_dict({**TINY, "decoder": {**TINY["decoder"], "ffn_ratio": [2]}})
    with pytest.raises(ArchError, match="none divides heads=3"):
        space_from_dict({**TINY, "decoder": {**TINY["decoder"], "heads": [3], "kv_heads": [2]}})
    with pytest.raises(ArchError, match="unknown space .nope.; known: "):
        load_space("nope")


# ---- encoding -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SPACES))
def test_encoding_fixed_length(name: str) -> None:
    s = SPACES[name]
    archs = [s.sample(i) for i in range(50)] + [s.smallest(), s.largest()]
    from latency.features import arch_feature_names, encode
    vecs = [encode(s, a) for a in archs]
    assert {len(v) for v in vecs} == {len(arch_feature_names(s))}
    assert len({v.tobytes() for v in vecs}) == len({a.id for a in archs})
    names = arch_feature_names(s)
    for a, v in zip(archs, vecs):
        for stack_name, stack in a.stacks:
            counts = [v[names.index(f"{stack_name}.n_{t}")] for t in ATTENTION_TYPES]
            assert sum(counts) == stack.depth


# ---- analytic cost ------------------------------------------------------------------------------

def test_params_hand_count() -> None:
    arch = Arch("decoder", head_dim=2, vocab_size=10, max_len=6, decoder=Stack(4, (Layer("softmax", 1, 1, 8),)))
    # embeddings 10*4 + 6*4, final LN 8; q,k,v (4*2+2) each, o 2*4+4; ffn 4*8+8 + 8*4+4; two LNs 16
    assert analytic_cost(arch, Workload(1, 4)).params == 40 + 24 + 8 + 3 * 10 + 12 + 40 + 36 + 16


class _Plain(nn.Module):
    """A plain PyTorch model of the shape `supernet/` builds, to check the count against numel."""

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        hd = arch.head_dim
        if arch.kind == "encoder-decoder":  # one token table for both stacks, as wide as the wider
            self.shared = nn.Embedding(arch.vocab_size, max(arch.encoder.embed, arch.decoder.embed))
        for name, stack in arch.stacks:
            d = stack.embed
            mods = nn.ModuleDict({"ln_f": nn.LayerNorm(d)})
            if arch.positions == "learned":  # rotary positions have no table
                mods["pos"] = nn.Embedding(arch.max_len, d)
            if arch.kind != "encoder-decoder":
                mods["tok"] = nn.Embedding(arch.vocab_size, d)
            for i, layer in enumerate(stack.layers):
                qw, kvw = layer.heads * hd, layer.kv_heads * hd
                block = nn.ModuleDict({"ln1": nn.LayerNorm(d), "q": nn.Linear(d, qw), "k": nn.Linear(d, kvw),
                                       "v": nn.Linear(d, kvw), "o": nn.Linear(qw, d), "ln2": nn.LayerNorm(d),
                                       "fc1": nn.Linear(d, layer.ffn), "fc2": nn.Linear(layer.ffn, d)})
                if layer.attn == "linformer":
                    block["E"] = nn.Linear(arch.max_len, layer.proj_len, bias=False)
                    block["F"] = nn.Linear(arch.max_len, layer.proj_len, bias=False)
                if layer.attn == "fastformer":
                    block["pool"] = nn.Linear(2 * qw, 1, bias=False)  # 2*qw weights, like the two vectors
                    block["transform"] = nn.Linear(hd, layer.heads * hd, bias=False)  # an hd x hd matrix per head
                if layer.cross_layers:
                    cw, de = layer.cross_heads * hd, arch.encoder.embed
                    block.update({"lnx": nn.LayerNorm(d), "xq": nn.Linear(d, cw), "xk": nn.Linear(de, cw),
                                  "xv": nn.Linear(de, cw), "xo": nn.Linear(cw, d)})
                mods[f"layer{i}"] = block
            if arch.classes:  # the pooled classification head of an encoder-only arch
                mods["head"] = nn.Linear(d, arch.classes)
            self.add_module(name, mods)


@pytest.mark.parametrize("name", sorted(SPACES))
def test_params_equal_numel_of_plain_model(name: str) -> None:
    s = SPACES[name]
    for arch in (s.sample(3), s.sample(4), s.smallest()):
        model = _Plain(arch)
        assert analytic_cost(arch, s.workload).params == sum(p.numel() for p in model.parameters())


def test_gpt2_small_largest_is_gpt2_small() -> None:
    # GPT-2 small (124,439,808 parameters) is the largest arch of our GPT-2 space.
    assert analytic_cost(SPACES["gpt2-small"].largest()).params == 124_439_808


def test_cost_scales_sensibly() -> None:
    s = SPACES["lm-shakespeare"]
    small, large = s.smallest(), s.largest()
    w = Workload(batch=1, seq_len=64, gen_tokens=32)
    cs, cl = analytic_cost(small, w), analytic_cost(large, w)
    assert cs.params < cl.params and cs.flops < cl.flops and cs.bytes < cl.bytes
    assert len([p for p in cl.parts if ".layers[" in p.part]) == large.decoder.depth
    # batch doubles the FLOPs; a decode step reads the weights again
    assert analytic_cost(large, Workload(batch=2, seq_len=64)).flops == 2 * analytic_cost(large, Workload(1, 64)).flops
    assert analytic_cost(large, Workload(1, 64, 8)).bytes > analytic_cost(large, Workload(1, 64)).bytes
    # at long contexts: linear (n h hd^2) < window (n w h hd, w > hd) < softmax (n^2 h hd)
    def one(attn, **kw):
        return Arch("decoder", 32, 259, 1024, decoder=Stack(128, (Layer(attn, 4, 4, 256, **kw),)))
    w = Workload(1, 1000)
    f = {a: analytic_cost(one(a, **kw), w).flops for a, kw in
         (("softmax", {}), ("window", {"window": 128}), ("linear", {}))}
    assert f["linear"] < f["window"] < f["softmax"]
    with pytest.raises(ArchError, match="max_len=256"):
        analytic_cost(large, Workload(1, 250, 10))


def test_workload_parse() -> None:
    assert Workload.parse("batch=2,len=30,gen=30") == Workload(2, 30, 30)
    assert Workload.parse("gen=5", base=Workload(1, 64, 0)) == Workload(1, 64, 5)
    for bad in ("batch=two", "len", "speed=3", "batch=0"):
        with pytest.raises(ArchError):
            Workload.parse(bad)


def test_torch_is_cpu_build_compatible() -> None:
    assert torch.__version__.startswith("2.")
