"""Sampling text from a decoder-only model with the incremental cache."""
from __future__ import annotations

import torch

from space.errors import UserError
from supernet.functional import Cache


@torch.inference_mode()
def generate(model, prompt: torch.Tensor, tokens: int, temperature: float = 0.8, top_k: int | None = 50,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """prompt (1, T) -> the `tokens` new ids (1, tokens). A prompt longer than the room the
    position table leaves is cut from the left."""
    arch = model.arch
    if arch.kind != "decoder":
        raise UserError(f"generate: a {arch.kind} model does not generate text from a prompt; use a language model")
    if tokens >= arch.max_len:
        raise UserError(f"--tokens {tokens}: the model has {arch.max_len} positions; ask for fewer")
    if temperature < 0:
        raise UserError(f"--temperature {temperature}: must be >= 0 (0 = greedy)")
    prompt = prompt[:, -(arch.max_len - tokens):]
    cache = Cache()
    logits = model(prompt, cache=cache, last_only=True)
    out = []
    for _ in range(tokens):
        logits = logits[:, -1].float()
        if temperature == 0:
            nxt = logits.argmax(-1, keepdim=True)
        else:
            logits = logits / temperature
            if top_k:
                kth = logits.topk(min(top_k, logits.shape[-1])).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(logits.softmax(-1), 1, generator=generator)
        out.append(nxt)
        logits = model(nxt, cache=cache, last_only=True)
    return torch.cat(out, dim=1)
