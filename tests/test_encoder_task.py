"""The encoder-only task: labelled texts split by document, a pooled classification head that
exports bit for bit, every attention type (Linformer and Fastformer included) through training,
search, export, ONNX and retraining, and the two baselines beside the model."""
from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from space import ATTENTION_TYPES, space_from_dict
from space.errors import UserError
from supernet.corpus.labelled import FOLIO_CATALOGUE, LabelBatches, folio_genres, read_labelled_file, windows
from supernet.model import SuperTransformer
from supernet.subnet import extract
from tests.conftest import tiny_space

TYPES = list(ATTENTION_TYPES)

TINY_CLASSIFIER_YAML = """\
name: tiny-classifier
kind: encoder
classes: 2
head_dim: 8
vocab_size: 259
max_len: 64
workload: {batch: 1, seq_len: 48, gen_tokens: 0}
encoder:
  embed: [16, 32]
  depth: [1, 2]
  heads: [1, 2]
  ffn_ratio: [1, 2]
  attention: {softmax: {}, window: {window: [4, 8]}, linear: {}, retention: {}, linformer: {proj_len: [4, 8]},
              fastformer: {}}
"""

WORDS = {"sea": ["wave", "ship", "salt", "tide", "sail", "storm"], "land": ["hill", "corn", "road", "farm", "oak", "wall"]}


def write_csv(path: Path, docs: int = 12, rows: int = 15, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label", "doc"])
        for d in range(docs):
            label = "sea" if d % 2 else "land"
            for _ in range(rows):
                w.writerow([" ".join(rng.choice(WORDS[label]) for _ in range(rng.randint(3, 12))), label, f"book{d}"])
    return path


def test_the_genre_task_splits_by_play_and_every_split_has_every_genre() -> None:
    corpus = folio_genres()
    docs = {s: corpus.documents(s) for s in ("train", "val", "test")}
    assert not (docs["train"] & docs["val"] or docs["train"] & docs["test"] or docs["val"] & docs["test"])
    assert sum(map(len, docs.values())) == sum(map(len, FOLIO_CATALOGUE.values())) == 36
    for split in ("val", "test"):
        assert sorted(t.label for t in getattr(corpus, split)) == [0, 0, 1, 1, 2, 2]  # two plays of each genre
    assert folio_genres().documents("test") == docs["test"]  # fixed


def test_your_csv_splits_by_document_and_bad_files_get_one_line(tmp_path: Path) -> None:
    corpus = read_labelled_file(write_csv(tmp_path / "d.csv", docs=20))
    assert corpus.labels == ("land", "sea")
    splits = [corpus.documents(s) for s in ("train", "val", "test")]
    assert all(splits) and not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2])
    (tmp_path / "bad.csv").write_text("words,label\nthe sea,sea\n")
    with pytest.raises(UserError, match="no column 'text'"):
        read_labelled_file(tmp_path / "bad.csv")
    with pytest.raises(UserError, match="splitting by document needs at least 3"):
        read_labelled_file(write_csv(tmp_path / "two.csv", docs=2))
    (tmp_path / "one.csv").write_text("text,label\na,x\nb,x\nc,x\n")
    with pytest.raises(UserError, match="at least 2"):
        read_labelled_file(tmp_path / "one.csv")


def test_batches_pad_and_evaluation_reads_every_window(tmp_path: Path) -> None:
    corpus = read_labelled_file(write_csv(tmp_path / "d.csv"))
    batches = LabelBatches(corpus.train, 16, pad_id=256)
    x, y = batches.sample(5, torch.Generator().manual_seed(0))
    assert x["tokens"].shape[0] == 5 == y.shape[0] and x["tokens"].shape[1] <= 16
    assert torch.equal(x["keep"], x["tokens"] != 256) and x["keep"][:, 0].all()
    again, _ = batches.sample(5, torch.Generator().manual_seed(0))
    assert torch.equal(again["tokens"], x["tokens"])
    fixed = list(batches.eval_batches(4))
    assert sum(len(b[1]) for b in fixed) == len(windows(corpus.train, 16))
    long = windows(corpus.train[:1], 4)  # a text longer than the input: its consecutive windows
    assert b"".join(bytes(p.tolist()) for p, _, _ in long).startswith(bytes(corpus.train[0].tokens[:4 * len(long) - 4].tolist()))


@pytest.mark.parametrize("attn", TYPES + ["mixed"])
def test_the_classifier_exports_bit_for_bit_and_ignores_padding(attn: str) -> None:
    space = tiny_space("encoder")
    model = SuperTransformer(space, seed=2).eval()
    rng = random.Random(attn)
    for _ in range(3):
        arch = space.sample(rng) if attn == "mixed" else space.with_attention([attn]).sample(rng)
        tokens = torch.randint(0, 20, (3, 11), generator=torch.Generator().manual_seed(1))
        keep = torch.ones_like(tokens, dtype=torch.bool)
        keep[1, 7:] = False
        with torch.no_grad():
            want = model(tokens, arch, keep=keep)
            assert want.shape == (3, 3)
            assert torch.equal(want, extract(model, arch)(tokens, keep=keep))
            alone = model(tokens[1:2, :7], arch)  # the padded row scores as the text alone
        assert torch.allclose(alone, want[1:2], atol=1e-5), (alone - want[1:2]).abs().max()


def test_baselines_see_the_labels_and_the_majority_does_not(tmp_path: Path) -> None:
    from supernet.baselines import classify_baselines
    corpus = read_labelled_file(write_csv(tmp_path / "d.csv", docs=30))

    def split(name):
        w = windows(getattr(corpus, name), 64)
        return [bytes(p.tolist()).decode() for p, _, _ in w], np.asarray([lab for _, lab, _ in w])
    majority, ngram = classify_baselines(split("train"), split("val"), split("test"), 2)
    train_labels, test_labels = split("train")[1], split("test")[1]
    top = np.bincount(train_labels).argmax()
    assert majority.accuracy == pytest.approx(np.mean(test_labels == top))
    share = np.mean(train_labels == top)  # its loss: the training frequencies as the prediction
    want = -np.mean(np.where(test_labels == top, np.log(share), np.log(1 - share)))
    assert majority.loss == pytest.approx(want)
    assert ngram.accuracy > 0.95 and ngram.loss < majority.loss


@pytest.mark.slow  # ~40 s: every stage on the encoder task, in-process
def test_every_stage_runs_on_the_encoder_task(tmp_path: Path) -> None:
    from nas import api
    (tmp_path / "tc.yaml").write_text(TINY_CLASSIFIER_YAML)
    data = write_csv(tmp_path / "d.csv", docs=12)
    api.train_supernet(tmp_path / "tc.yaml", out=tmp_path / "sn", data=data, steps=8, batch_size=8, seq_len=48,
                       progress=False)
    from space import load_space
    space = load_space(tmp_path / "tc.yaml")
    archs = [space.with_attention([t]).largest() for t in ("linformer", "fastformer")]
    res = api.evaluate(tmp_path / "sn", archs, progress=False)
    assert res.task == "classify" and all(0 <= s.translation["accuracy %"] <= 100 for s in res.scores)
    assert [b.name.split()[0] for b in res.baselines] == ["majority", "char"]
    out = api.search("a100", "2ms", space=tmp_path / "tc.yaml", supernet=tmp_path / "sn", iterations=10,
                     out=tmp_path / "run", eval_batches=1, progress=False)
    assert out.best is not None
    exported = api.export(tmp_path / "run", out=tmp_path / "model", onnx=True)
    assert exported.card.onnx.max_abs_diff < 1e-4 and (tmp_path / "model" / "model.onnx").is_file()
    r = api.retrain(tmp_path / "model", mode="finetune", steps=3, batch_size=8, progress=False)
    assert 0 <= r.classification["accuracy"] <= 1 and r.classification["texts"] > 0
    assert r.card.retrain.test_accuracy == r.classification["accuracy"]


def test_encoder_spaces_need_classes_and_generate_nothing() -> None:
    base = {"name": "e", "kind": "encoder", "head_dim": 8, "vocab_size": 23, "max_len": 32,
            "encoder": {"embed": [16], "depth": [1], "heads": [2], "ffn_ratio": [1]}}
    with pytest.raises(UserError, match="give `classes: N`"):
        space_from_dict(base)
    with pytest.raises(UserError, match="gen_tokens: 0"):
        space_from_dict({**base, "classes": 2, "workload": {"batch": 1, "seq_len": 8, "gen_tokens": 4}})
    with pytest.raises(UserError, match="only an encoder"):
        space_from_dict({**tiny_space("decoder").to_dict(), "classes": 2})
