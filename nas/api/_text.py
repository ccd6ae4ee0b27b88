"""Using an exported model: generate text (language models) or translate (encoder-decoders)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from space.errors import UserError


def _model(model, device: str = "auto"):
    """(model on the device, its tokenizer): a folder `nas export` wrote, or a loaded SubTransformer
    (with its card, or bytes)."""
    from supernet.corpus.tokenizer import ByteTokenizer, load_beside
    from supernet.device import resolve_device
    from supernet.subnet import SubTransformer, load
    folder = None
    if not isinstance(model, SubTransformer):
        folder, model = model, load(model)
    card = getattr(model, "card", None)
    tok = load_beside(card.tokenizer, folder) if card is not None and folder is not None else ByteTokenizer()
    return model.to(resolve_device(device)), tok


def generate(model: str | Path | object, prompt: str = "ROMEO.\n", *, tokens: int = 200, temperature: float = 0.8,
             top_k: int | None = 50, seed: int = 0, device: str = "auto") -> str:
    """The prompt's continuation (`tokens` new tokens, decoded) by an exported language model (a
    folder or a loaded SubTransformer), sampled with the incremental cache, in its own tokenizer."""
    import torch
    from supernet.generate import generate as sample
    model, tok = _model(model, device)
    ids = torch.as_tensor(tok.encode(prompt).astype("int64"), dtype=torch.long)[None]
    if ids.numel() == 0:
        raise UserError("--prompt is empty; give some text to continue")
    dev = next(model.parameters()).device
    new = sample(model, ids.to(dev), tokens, temperature, top_k, torch.Generator(device=dev).manual_seed(seed))
    return tok.decode(new[0].tolist())


def translate(model: str | Path | object, texts: Sequence[str], *, beam: int = 4, device: str = "auto") -> list[str]:
    """One translation per sentence, by an exported encoder-decoder (beam search on the cache), in
    its own tokenizer."""
    from supernet.translate import translate_pairs
    model, tok = _model(model, device)
    if model.arch.kind != "encoder-decoder":
        raise UserError(f"a {model.arch.kind} model does not translate; use `nas generate`")
    if beam < 1:
        raise UserError(f"--beam {beam}: must be at least 1")
    if not texts:
        raise UserError("nothing to translate: give --text SENTENCE or --file FILE")
    return translate_pairs(model.arch, model.weights(), [(s, "") for s in texts], beam=beam, tokenizer=tok)
