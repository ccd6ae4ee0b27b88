"""Translation: seq2seq batches, supernet training on parallel data, HAT's arbitrary
encoder-decoder attention, greedy and beam-search decoding on the cache, BLEU/chrF, the CLI."""
from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from space import Arch, Layer, Stack, analytic_cost, load_space, space_from_dict
from supernet import functional
from supernet.corpus.pairs import PairBatches
from supernet.corpus.tokenizer import ByteTokenizer
from supernet.model import SuperTransformer
from supernet.subnet import extract
from supernet.train import TrainConfig, evaluate_loss, train_supernet
from supernet.translate import beam_search, corpus_scores, greedy, score_translation, translate_pairs

TOK = ByteTokenizer()
ATTN_ENC = {"softmax": {}, "window": {"window": [3, 5]}, "linear": {}, "linformer": {"proj_len": [4, 8]},
            "fastformer": {}}
ATTN_DEC = {"softmax": {}, "window": {"window": [3, 5]}, "linear": {}}


def tiny_space(vocab: int = 259):
    stack = {"embed": [16, 32], "heads": [2, 4], "kv_heads": [1, 2, 4], "ffn_ratio": [1, 2]}
    return space_from_dict({
        "name": "tiny-translation", "kind": "encoder-decoder", "head_dim": 8, "vocab_size": vocab, "max_len": 64,
        "workload": {"batch": 1, "seq_len": 12, "gen_tokens": 12},
        "encoder": {**stack, "depth": [1, 2, 3], "attention": ATTN_ENC},
        "decoder": {**stack, "depth": [1, 2], "attention": ATTN_DEC, "cross_layers": [1, 2, 3],
                    "cross_heads": [2, 4]}})


def toy_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """A task a tiny model learns in seconds: 'modernising' a word = spelling it in capitals."""
    rng = random.Random(seed)
    words = ["thou", "art", "hath", "doth", "thee", "mine", "love", "king", "sweet", "night"]
    return [(w, w.upper()) for w in (rng.choice(words) for _ in range(n))]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny supernet trained 60 sandwich steps on the toy task (a few seconds)."""
    space = tiny_space()
    train, val = PairBatches(toy_pairs(800), space.max_len), toy_pairs(64, seed=1)
    val_batches = list(PairBatches(val, space.max_len).eval_batches(32))
    cfg = TrainConfig(steps=60, batch_size=32, lr=2e-2, warmup=10, eval_every=60, ckpt_every=60,
                      label_smoothing=0.1, n_random=1)
    out = tmp_path_factory.mktemp("sup")
    st = train_supernet(space, train, val_batches, out, cfg, {"task": "translation", "data": None})
    return st, space, val, val_batches


def test_pair_batches_layout() -> None:
    pb = PairBatches([("ab", "xyz"), ("hello", "hi")], max_len=8)
    x, y = pb.collate([0, 1])
    assert x["src"].tolist() == [[97, 98, TOK.EOS, 256, 256, 256], [104, 101, 108, 108, 111, TOK.EOS]]
    assert x["src_keep"].sum(1).tolist() == [3, 6]
    assert x["tokens"].tolist() == [[TOK.BOS, 120, 121, 122], [TOK.BOS, 104, 105, 256]]
    assert y.tolist() == [[120, 121, 122, TOK.EOS], [104, 105, TOK.EOS, 256]]  # label t = input t+1
    long = PairBatches([("a" * 20, "b" * 20)], max_len=8)  # cut to the model's positions
    x, y = long.collate([0])
    assert x["src"].shape[1] == 8 and x["tokens"].shape[1] == 8 and y[0, -1] == TOK.EOS


def test_pair_batches_sample_reproducible_and_bucketed() -> None:
    pb = PairBatches(toy_pairs(500), 64)
    a = pb.sample(16, torch.Generator().manual_seed(3))
    b = pb.sample(16, torch.Generator().manual_seed(3))
    assert torch.equal(a[0]["src"], b[0]["src"]) and torch.equal(a[1], b[1])
    evals = list(pb.eval_batches(16, max_batches=3))
    assert len(evals) == 3 and all(len(y) == 16 for _, y in evals)
    assert [torch.equal(p[1], q[1]) for p, q in zip(evals, pb.eval_batches(16, max_batches=3))] == [True] * 3


def test_training_learns_the_toy_task(trained) -> None:
    st, space, val, val_batches = trained
    log = st.log[-1]
    assert log["val_largest"] < 2.0 and log["val_smallest"] < 2.5, log  # from ln(259) = 5.6 nats
    hyps = translate_pairs(space.largest(), st.model.active_weights(space.largest()), val)
    _, chrf = corpus_scores(hyps, [t for _, t in val])  # one-word sentences: BLEU's 4-grams are 0
    assert chrf > 30, (chrf, hyps[:3])


def test_padding_does_not_change_the_loss(trained) -> None:
    """A pair scores the same alone and in a batch padded to a longer pair."""
    st, space, val, _ = trained
    arch = space.sample(random.Random(5))
    pb = PairBatches([("thou", "THOU"), ("sweet king night mine", "SWEET KING NIGHT MINE")], 64)
    alone = evaluate_loss(st.model, arch, [pb.collate([0])])
    x, y = pb.collate([0, 1])
    y = y.clone()
    y[1] = TOK.PAD  # score only the short pair, padded inside a batch with a long one
    assert evaluate_loss(st.model, arch, [(x, y)]) == pytest.approx(alone, rel=1e-5)


def _with_cross(arch: Arch, k: int) -> Arch:
    layers = tuple(Layer(**{**layer.to_dict(), "cross_layers": k}) for layer in arch.decoder.layers)
    return Arch(arch.kind, arch.head_dim, arch.vocab_size, arch.max_len, encoder=arch.encoder,
                decoder=Stack(arch.decoder.embed, layers))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_cross_attention_reads_the_last_k_encoder_layers(trained, k) -> None:
    st, space, _, _ = trained
    base = space.largest()  # 3 encoder layers
    arch = _with_cross(base, k)
    x, _ = PairBatches(toy_pairs(4), 64).collate([0, 1, 2, 3])
    w = st.model.active_weights(arch)
    outs = functional.encode(arch, w, x["src"], x["src_keep"])
    mem, mkeep = functional.memories(arch, outs, x["src_keep"])
    s = x["src"].shape[1]
    assert mem[k].shape == (4, k * s, arch.encoder.embed) and mkeep[k].shape == (4, k * s)
    for j in range(k):  # the j-th block of the memory is encoder layer (3 - k + j)'s output
        assert torch.equal(mem[k][:, j * s:(j + 1) * s], outs[3 - k + j])
    # the choice matters, and the standalone model computes exactly what the supernet does
    logits = st.model(x["tokens"], arch, src=x["src"], src_keep=x["src_keep"])
    other = st.model(x["tokens"], _with_cross(base, k % 3 + 1), src=x["src"], src_keep=x["src_keep"])
    assert not torch.allclose(logits, other)
    sub = extract(st.model, arch)
    assert torch.allclose(sub(x["tokens"], src=x["src"], src_keep=x["src_keep"]), logits, atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_beam_one_equals_greedy(trained, seed) -> None:
    st, space, val, _ = trained
    arch = space.sample(random.Random(seed))
    w = st.model.active_weights(arch)
    x, _ = PairBatches(val[:16], 64).collate(list(range(16)))
    assert beam_search(arch, w, x["src"], x["src_keep"], beam=1) == greedy(arch, w, x["src"], x["src_keep"])


@torch.no_grad()
def _logprob(arch, w, src, hyp: list[int]) -> float:
    tokens = torch.tensor([[TOK.BOS] + hyp])
    target = torch.tensor(hyp + [TOK.EOS])
    logp = functional.forward(arch, w, tokens, src=src[None]).log_softmax(-1)[0]
    return float(logp[torch.arange(len(target)), target].sum())


@pytest.mark.parametrize("attn", ["softmax", "window", "linear"])
def test_beam_search_scores_match_a_full_forward(trained, attn) -> None:
    """Beam search reorders every layer's decoding state; the log-probability it kept for its best
    hypothesis must equal the teacher-forced forward of that hypothesis."""
    st, space, val, _ = trained
    rng = random.Random(0)
    arch = space.sample(rng)
    dec = tuple(Layer(**{**layer.to_dict(), "attn": attn, "window": 3 if attn == "window" else None})
                for layer in arch.decoder.layers)
    arch = Arch(arch.kind, arch.head_dim, arch.vocab_size, arch.max_len, encoder=arch.encoder,
                decoder=Stack(arch.decoder.embed, dec))
    w = st.model.active_weights(arch)
    x, _ = PairBatches(val[:6], 64).collate(list(range(6)))
    hyps, scores = beam_search(arch, w, x["src"], x["src_keep"], beam=3, length_penalty=0.0, return_scores=True)
    for i, (hyp, score) in enumerate(zip(hyps, scores)):
        src = x["src"][i][x["src_keep"][i]]
        assert score == pytest.approx(_logprob(arch, w, src, hyp), abs=1e-3)


def test_score_translation_reports_both_metrics(trained) -> None:
    st, space, val, _ = trained
    arch = space.smallest()
    sc = score_translation(arch, st.model.active_weights(arch), val[:20], beam=2)
    assert sc.sentences == 20 and sc.decoding == "beam 2" and 0 <= sc.bleu <= 100 and 0 <= sc.chrf <= 100
    line = "thou art more lovely and more temperate"
    assert corpus_scores([line], [line]) == pytest.approx((100.0, 100.0))


def test_hat_wmt14_largest_params_and_decoding() -> None:
    """HAT's WMT'14 space: the largest SubTransformer (embed 640, FFN 3072, 6+6 layers, 8 heads) has
    exactly the analytic parameter count, and runs a forward and a cached decoding pass."""
    space = load_space("hat-wmt14")
    largest = space.largest()
    assert (largest.encoder.embed, largest.decoder.embed) == (640, 640)
    assert len(largest.encoder.layers) == len(largest.decoder.layers) == 6
    assert all(layer.ffn == 3072 and layer.heads == 8 for _, s in largest.stacks for layer in s.layers)
    torch.manual_seed(0)
    model = SuperTransformer(space)
    sub = extract(model, largest)
    assert sum(p.numel() for p in sub.parameters()) == analytic_cost(largest).params
    src = torch.randint(0, space.vocab_size, (2, 11))
    keep = torch.ones_like(src, dtype=torch.bool)
    with torch.inference_mode():
        logits = model(torch.randint(0, space.vocab_size, (2, 7)), largest, src=src, src_keep=keep)
        assert logits.shape == (2, 7, space.vocab_size) and torch.isfinite(logits).all()
        out = greedy(largest, sub.weights(), src, keep, max_new=5)
    assert len(out) == 2 and all(len(o) <= 5 for o in out)


def _nas(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_misaligned_parallel_files_one_line(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("one\ntwo\nthree\n")
    (tmp_path / "b.txt").write_text("ONE\nTWO\n")
    r = _nas("train-supernet", "--space", "folio-translation", "--src", "a.txt", "--tgt", "b.txt", "--steps", "1",
             "--out", "sup", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "3 and 2 lines" in r.stderr, r.stderr
    r = _nas("train-supernet", "--space", "folio-translation", "--src", "a.txt", "--steps", "1", cwd=tmp_path)
    assert r.returncode == 1 and "--tgt" in r.stderr and "Traceback" not in r.stderr
