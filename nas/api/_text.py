"""Using an exported model: generate text (language models) or translate (encoder-decoders)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from space.errors import UserError


def _model(model):
    from supernet.subnet import SubTransformer, load
    return model if isinstance(model, SubTransformer) else load(model)


def generate(model: str | Path | object, prompt: str = "ROMEO.\n", *, tokens: int = 200, temperature: float = 0.8,
             top_k: int | None = 50, seed: int = 0) -> str:
    """The prompt's continuation (`tokens` new bytes) by an exported language model (a folder or a
    loaded SubTransformer), sampled with the incremental cache."""
    import torch
    from supernet.corpus import ByteTokenizer
    from supernet.generate import generate as sample
    model = _model(model)
    tok = ByteTokenizer()
    ids = torch.as_tensor(tok.encode(prompt), dtype=torch.long)[None]
    if ids.numel() == 0:
        raise UserError("--prompt is empty; give some text to continue")
    new = sample(model, ids, tokens, temperature, top_k, torch.Generator().manual_seed(seed))
    return tok.decode(new[0].tolist())


def translate(model: str | Path | object, texts: Sequence[str], *, beam: int = 4) -> list[str]:
    """One translation per sentence, by an exported encoder-decoder (beam search on the cache)."""
    from supernet.translate import translate_pairs
    model = _model(model)
    if model.arch.kind != "encoder-decoder":
        raise UserError(f"a {model.arch.kind} model does not translate; use `nas generate`")
    if beam < 1:
        raise UserError(f"--beam {beam}: must be at least 1")
    if not texts:
        raise UserError("nothing to translate: give --text SENTENCE or --file FILE")
    return translate_pairs(model.arch, model.weights(), [(s, "") for s in texts], beam=beam)
