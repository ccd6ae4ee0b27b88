"""Rotary positions (an arch's `positions: rope`): cached decoding equals the full forward for every
attention type that takes them, with grouped-query heads; the model has no position table; relative
offsets are what the scores see; the space refuses types without them; export and ONNX follow."""
from __future__ import annotations

import pytest
import torch

from space import ATTENTION_TYPES, Arch, ArchError, Layer, Stack, analytic_cost, space_from_dict
from supernet.attention.rope import rope_tables, rotate
from supernet.functional import Cache
from supernet.model import SuperTransformer
from supernet.subnet import SubTransformer, extract
from tests.conftest import ATTN

ROPE = [t for t, s in ATTENTION_TYPES.items() if s.rope]


def rope_space(kind: str = "decoder", types=None):
    types = types or [t for t in ROPE if ATTENTION_TYPES[t].causal or kind == "encoder"]
    stack = {"embed": [16, 32], "depth": [1, 2], "heads": [2, 4], "kv_heads": [1, 2, 4], "ffn_ratio": [1, 2],
             "attention": {t: ATTN[t] for t in types}}
    return space_from_dict({"name": f"rope-{kind}", "kind": kind, "head_dim": 8, "vocab_size": 23, "max_len": 96,
                            "positions": "rope", kind: stack, **({"classes": 2} if kind == "encoder" else {})})


def test_rope_types_are_declared_by_their_units() -> None:
    assert set(ROPE) == {"softmax", "window", "linear", "retention"}  # Linformer and Fastformer mix positions: none


@pytest.mark.parametrize("attn", ["softmax", "window", "linear", "retention", "mixed"])
@pytest.mark.parametrize("kv", [1, 4])
def test_cached_decoding_equals_full_forward_with_rope(attn: str, kv: int) -> None:
    kinds = ["softmax", "window", "linear", "retention"] if attn == "mixed" else [attn, attn]
    layers = tuple(Layer(t, 4, kv, 32, window=5 if t == "window" else None) for t in kinds)
    arch = Arch("decoder", 8, 23, 96, decoder=Stack(32, layers), positions="rope")
    sub = SubTransformer(arch).reset_parameters(0).eval()
    x = torch.randint(0, 23, (2, 80), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = sub(x)
        cache = Cache()
        parts = [sub(x[:, :11], cache=cache)] + [sub(x[:, t:t + 1], cache=cache) for t in range(11, 80)]
    assert torch.allclose(full, torch.cat(parts, 1), atol=1e-5, rtol=0)


def test_rotation_makes_scores_depend_on_offsets_only() -> None:
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8, generator=g), torch.randn(1, 1, 1, 8, generator=g)
    def score(i: int, j: int) -> float:
        return float((rotate(q, rope_tables(i, 1, 8, "cpu")) * rotate(k, rope_tables(j, 1, 8, "cpu"))).sum())
    assert score(7, 3) == pytest.approx(score(40, 36), abs=1e-5)
    assert score(7, 3) != pytest.approx(score(7, 5), abs=1e-3)
    assert torch.allclose(rotate(q, rope_tables(0, 1, 8, "cpu")), q)  # position 0: no turn


def test_rope_models_have_no_position_table_and_their_cost_says_so() -> None:
    space = rope_space()
    model = SuperTransformer(space, seed=0)
    assert not hasattr(model.decoder, "pos")
    arch = space.largest()
    sub = extract(model, arch)
    assert not any("pos" in n for n, _ in sub.named_parameters())
    x = torch.randint(0, 23, (1, 20))
    with torch.no_grad():
        assert torch.allclose(model(x, arch), sub(x), atol=1e-6)  # the extracted model computes as the supernet
    assert analytic_cost(arch).params == sum(p.numel() for p in sub.parameters())
    learned = Arch.from_dict({k: v for k, v in arch.to_dict().items() if k != "positions"})
    assert learned.id != arch.id and "positions" not in learned.to_dict()  # learned archs keep their ids
    assert analytic_cost(learned).params - analytic_cost(arch).params == 96 * arch.decoder.embed


def test_encoder_takes_rope_and_the_space_refuses_types_without_it() -> None:
    space = rope_space("encoder", ["softmax", "window", "linear"])
    arch = space.sample(3)
    model = SuperTransformer(space, seed=0)
    x = torch.randint(0, 23, (2, 12))
    assert torch.isfinite(model(x, arch)).all()
    with pytest.raises(ArchError, match="linformer.*takes no rotary positions"):
        rope_space("encoder", ["softmax", "linformer"])
    with pytest.raises(ArchError, match="takes no rotary positions"):
        Arch("encoder", 8, 23, 96, encoder=Stack(16, (Layer("fastformer", 2, 2, 16),)), positions="rope", classes=2)
    with pytest.raises(ArchError, match="even head_dim"):
        Arch("decoder", 7, 23, 96, decoder=Stack(14, (Layer("softmax", 2, 2, 16),)), positions="rope")
    with pytest.raises(ArchError, match="positions='sinusoid'"):
        space_from_dict({**space.to_dict(), "positions": "sinusoid"})


def test_a_rope_model_exports_and_its_onnx_graph_matches(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from supernet.onnx_export import export_onnx
    from supernet.subnet import load, save
    arch = Arch("decoder", 8, 23, 96, decoder=Stack(16, (Layer("softmax", 2, 1, 32), Layer("linear", 2, 2, 32))),
                positions="rope")
    folder = save(SubTransformer(arch).reset_parameters(0), tmp_path / "m")
    model = load(folder)
    assert model.arch == arch
    graph = export_onnx(model, folder, length=24)
    assert graph.max_abs_diff < 1e-4
