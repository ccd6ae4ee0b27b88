"""Byte-level tokenizer: ids 0..255 are the UTF-8 bytes, then PAD, BOS, EOS.

No training, no vocabulary file, any text in any language round-trips; sequences are ~4x longer
than with BPE, which is the right trade for a NAS that trains thousands of small subnets.
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from space._io import check_keys


@dataclass(frozen=True)
class ByteTokenizer:
    PAD: ClassVar[int] = 256
    BOS: ClassVar[int] = 257
    EOS: ClassVar[int] = 258
    vocab_size: ClassVar[int] = 259  # uint16 holds every id, so token arrays take 2 bytes each

    def encode(self, text: str) -> np.ndarray:
        """UTF-8 bytes of `text` as a uint16 array (no specials added)."""
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)

    def decode(self, ids) -> str:
        """Text of a 1-D sequence of ids (list, array or tensor); specials are skipped and bytes
        that are not valid UTF-8 (e.g. a character cut in half) become U+FFFD."""
        if hasattr(ids, "detach"):  # a torch tensor, possibly on a GPU; avoids importing torch
            ids = ids.detach().cpu().numpy()
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        bad = (ids < 0) | (ids >= self.vocab_size)
        if bad.any():
            raise ValueError(f"token id {ids[bad][0]} is outside the byte vocabulary "
                             f"0..{self.vocab_size - 1}; was it produced by another tokenizer?")
        return ids[ids < 256].astype(np.uint8).tobytes().decode("utf-8", errors="replace")

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
