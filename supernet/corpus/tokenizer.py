"""Tokenizers: bytes (the default), a BPE trained on the user's corpus with the Hugging Face
`tokenizers` library, or the user's own `tokenizer.json`.

One convention holds for every tokenizer: the last three ids of the vocabulary are PAD, BOS and
EOS (`special_ids(vocab_size)`), so a model knows its special tokens from its vocabulary size
alone, and a tokenizer's vocabulary size must equal the space's `vocab_size` exactly.

- bytes: ids 0..255 are the UTF-8 bytes, then PAD 256, BOS 257, EOS 258 (259). No training, no
  vocabulary file, any text round-trips; sequences are ~4x longer than with BPE, the right trade for
  a NAS that trains thousands of small subnets.
- bpe:N: byte-level BPE (GPT-2's scheme: any text round-trips) with N - 3 learned tokens, trained
  on the training split only; if the corpus yields fewer merges, unused placeholder tokens fill
  the vocabulary up to N - 3, so ids stay where the model expects them.
- a tokenizer.json file: its own vocabulary, then the three specials appended.

A tokenizer is saved as plain data (`to_dict`, the Hugging Face JSON included), in the supernet's
record and, as `tokenizer.json`, beside every exported model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable

import numpy as np

from space.files import check_keys
from space.errors import UserError

SPECIALS = ("<pad>", "<bos>", "<eos>")


def special_ids(vocab_size: int) -> tuple[int, int, int]:
    """(PAD, BOS, EOS) of a vocabulary: its last three ids."""
    return vocab_size - 3, vocab_size - 2, vocab_size - 1


def _ids(ids) -> np.ndarray:
    if hasattr(ids, "detach"):  # a torch tensor, possibly on a GPU; avoids importing torch
        ids = ids.detach().cpu().numpy()
    return np.asarray(ids, dtype=np.int64).reshape(-1)


@dataclass(frozen=True)
class ByteTokenizer:
    PAD: ClassVar[int] = 256
    BOS: ClassVar[int] = 257
    EOS: ClassVar[int] = 258
    vocab_size: ClassVar[int] = 259  # uint16 holds every id, so token arrays take 2 bytes each
    kind: ClassVar[str] = "bytes"

    @property
    def pad_id(self) -> int:
        return self.PAD

    @property
    def bos_id(self) -> int:
        return self.BOS

    @property
    def eos_id(self) -> int:
        return self.EOS

    def encode(self, text: str) -> np.ndarray:
        """UTF-8 bytes of `text` as a uint16 array (no specials added)."""
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)

    def decode(self, ids) -> str:
        """Text of a 1-D sequence of ids (list, array or tensor); specials are skipped and bytes
        that are not valid UTF-8 (e.g. a character cut in half) become U+FFFD."""
        ids = _ids(ids)
        bad = (ids < 0) | (ids >= self.vocab_size)
        if bad.any():
            raise ValueError(f"token id {ids[bad][0]} is outside the byte vocabulary "
                             f"0..{self.vocab_size - 1}; was it produced by another tokenizer?")
        return ids[ids < 256].astype(np.uint8).tobytes().decode("utf-8", errors="replace")

    def describe(self) -> str:
        return "bytes (259 ids: 256 bytes + PAD, BOS, EOS)"

    def to_dict(self) -> dict:
        """Everything needed to rebuild the tokenizer, for saving next to a model."""
        return {"type": "byte", "vocab_size": self.vocab_size,
                "pad": self.PAD, "bos": self.BOS, "eos": self.EOS}

    @classmethod
    def from_dict(cls, d: dict) -> "ByteTokenizer":
        want = cls().to_dict()
        check_keys(d, "tokenizer", want, error=ValueError)
        for k, v in want.items():
            if d.get(k, v) != v:  # a model saved with another id layout must not load silently
                raise ValueError(f"tokenizer: {k}={d[k]!r} but ByteTokenizer has {k}={v!r}; "
                                 f"this model was saved with a different tokenizer")
        return cls()


class HFTokenizer:
    """A Hugging Face `tokenizers.Tokenizer` whose last three ids are PAD, BOS and EOS."""

    def __init__(self, tok: Any, kind: str, source: str = "") -> None:
        self.tok, self.kind, self.source = tok, kind, source
        self.vocab_size = tok.get_vocab_size(with_added_tokens=True)
        self.pad_id, self.bos_id, self.eos_id = special_ids(self.vocab_size)
        got = tuple(tok.token_to_id(s) for s in SPECIALS)
        if got != (self.pad_id, self.bos_id, self.eos_id):
            raise UserError(f"tokenizer {source or kind}: its last three ids must be {', '.join(SPECIALS)} "
                            f"(found {got}); load it with load_tokenizer_file, which appends them")

    def encode(self, text: str) -> np.ndarray:
        ids = self.tok.encode(text, add_special_tokens=False).ids
        return np.asarray(ids, dtype=np.uint16 if self.vocab_size <= 65536 else np.int64)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        dtype = np.uint16 if self.vocab_size <= 65536 else np.int64
        return [np.asarray(e.ids, dtype=dtype) for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids) -> str:
        ids = _ids(ids)
        bad = (ids < 0) | (ids >= self.vocab_size)
        if bad.any():
            raise ValueError(f"token id {ids[bad][0]} is outside this tokenizer's vocabulary 0..{self.vocab_size - 1}")
        return self.tok.decode([int(i) for i in ids if i < self.pad_id], skip_special_tokens=True)

    def describe(self) -> str:
        return f"{self.kind} ({self.vocab_size:,} ids{', ' + self.source if self.source else ''})"

    def to_dict(self) -> dict:
        return {"type": self.kind, "vocab_size": self.vocab_size, "source": self.source,
                "json": self.tok.to_str()}


Tokenizer = ByteTokenizer | HFTokenizer


def _hf():
    try:
        import tokenizers
    except ImportError:
        raise UserError("BPE and tokenizer.json need the Hugging Face tokenizers library: "
                        "pip install tokenizers") from None
    return tokenizers


def train_bpe(texts: Iterable[str], vocab_size: int) -> HFTokenizer:
    """A byte-level BPE of exactly `vocab_size` ids (specials last), trained on `texts`."""
    tk = _hf()
    from tokenizers import decoders, models, pre_tokenizers, trainers
    if vocab_size < 256 + 3 + 1:
        raise UserError(f"--tokenizer bpe:{vocab_size}: a byte-level BPE needs at least 260 ids "
                        f"(256 bytes, one merge, 3 specials); use bytes for fewer")
    tok = tk.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    learned = vocab_size - len(SPECIALS)
    trainer = trainers.BpeTrainer(vocab_size=learned, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    short = learned - tok.get_vocab_size()
    if short > 0:  # a small corpus runs out of merges: placeholders keep the specials at the end
        tok.add_tokens([f"<unused-{i}>" for i in range(short)])
    tok.add_special_tokens(list(SPECIALS))
    return HFTokenizer(tok, "bpe", f"trained, {short} unused" if short > 0 else "trained")


def load_tokenizer_file(path: str | Path) -> HFTokenizer:
    """A user's tokenizer.json, with PAD, BOS and EOS appended after its own vocabulary."""
    tk = _hf()
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--tokenizer {path}: no such file; give bytes, bpe:N or a tokenizer.json")
    try:
        tok = tk.Tokenizer.from_file(str(path))
    except Exception as e:  # noqa: BLE001  (the library raises its own exception type)
        raise UserError(f"--tokenizer {path}: not a Hugging Face tokenizer.json ({str(e).splitlines()[0][:100]})") from None
    for s in SPECIALS:
        if tok.token_to_id(s) is not None:
            raise UserError(f"--tokenizer {path}: already has a token {s!r}; hwnas appends PAD, BOS, EOS itself")
    tok.add_special_tokens(list(SPECIALS))
    return HFTokenizer(tok, "file", path.name)


def tokenizer_from_dict(d: Any) -> Tokenizer:
    """The tokenizer a record or model card saved."""
    if not isinstance(d, dict) or "type" not in d:
        raise UserError(f"tokenizer: expected a saved tokenizer (a mapping with a type), got {d!r:.60}")
    if d["type"] == "byte":
        try:
            return ByteTokenizer.from_dict(d)
        except ValueError as e:
            raise UserError(str(e)) from None
    check_keys(d, "tokenizer", ("type", "vocab_size", "source", "json"), ("type", "vocab_size", "json"))
    tok = _hf().Tokenizer.from_str(d["json"])
    out = HFTokenizer(tok, d["type"], d.get("source", ""))
    if out.vocab_size != d["vocab_size"]:
        raise UserError(f"tokenizer: saved with {d['vocab_size']} ids but rebuilds with {out.vocab_size}")
    return out


def parse_spec(spec: str | None, vocab_size: int) -> tuple[str, int | Path | None]:
    """`bytes`, `bpe` (the space's vocabulary size), `bpe:N`, or a path to a tokenizer.json."""
    spec = (spec or "bytes").strip()
    if spec == "bytes":
        return "bytes", None
    if spec == "bpe" or spec.startswith("bpe:"):
        n = spec.partition(":")[2] or str(vocab_size)
        if not n.isdigit():
            raise UserError(f"--tokenizer {spec!r}: write bpe:N with N the vocabulary size, e.g. bpe:8000")
        return "bpe", int(n)
    if spec.endswith(".json") or Path(spec).exists():
        return "file", Path(spec)
    raise UserError(f"--tokenizer {spec!r}: choose bytes, bpe:N (a BPE of N ids trained on your corpus) "
                    f"or the path of a tokenizer.json")


def check_vocab(tokenizer_vocab: int, space_vocab: int, spec: str, space_name: str) -> None:
    if tokenizer_vocab != space_vocab:
        raise UserError(f"--tokenizer {spec}: {tokenizer_vocab:,} ids, but space {space_name!r} has vocab_size "
                        f"{space_vocab:,}; use a tokenizer of {space_vocab:,} ids (e.g. bpe:{space_vocab}) or a space "
                        f"whose vocab_size is {tokenizer_vocab:,}")


TOKENIZER_FILE = "tokenizer.json"


def save_beside(saved: dict[str, Any], folder: str | Path) -> dict[str, Any]:
    """Writes a saved tokenizer (a record's) beside an exported model as `tokenizer.json` and
    returns what the model card keeps of it (bytes: everything; others: all but the JSON)."""
    if saved.get("type") == "byte":
        return dict(saved)
    from space.files import atomic_write_text
    atomic_write_text(Path(folder) / TOKENIZER_FILE, json.dumps(json.loads(saved["json"]), indent=1))
    return {k: v for k, v in saved.items() if k != "json"} | {"file": TOKENIZER_FILE}


def load_beside(card_entry: dict[str, Any] | None, folder: str | Path) -> Tokenizer:
    """The tokenizer of an exported model: its card's entry, with `tokenizer.json` beside it."""
    if not card_entry or card_entry.get("type") == "byte":
        return ByteTokenizer()
    path = Path(folder) / card_entry.get("file", TOKENIZER_FILE)
    try:
        text = path.read_text()
    except OSError:
        raise UserError(f"{path}: missing; the model's card names a {card_entry.get('type')} tokenizer "
                        f"saved there; export the model again") from None
    entry = {k: v for k, v in card_entry.items() if k != "file"} | {"json": text}
    return tokenizer_from_dict(entry)
