"""Translating with an encoder-decoder (supernet arch or SubTransformer): greedy and beam-search
decoding on the incremental cache, and corpus BLEU and chrF (sacrebleu).

Both decoders take (arch, weights) as `functional.forward` does, so the supernet (weights =
`active_weights(arch)`, views) and an exported SubTransformer (its own parameters) decode alike.
The source is encoded once per batch: the cache keeps the encoder memory and each decoder layer's
cross-attention keys and values; every step feeds one new token per sentence.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from space import Arch
from supernet import functional
from supernet.corpus.pairs import PairBatches
from supernet.corpus.tokenizer import ByteTokenizer, special_ids
from supernet.functional import Cache



def max_new_tokens(src_keep: torch.Tensor, max_len: int) -> int:
    """A budget for the translation's length: 1.5x the longest source plus 10, within the model's
    positions (spelling modernisation barely changes lengths; the margin is for other tasks)."""
    longest = int(src_keep.sum(1).max())
    return max(1, min(max_len - 1, int(1.5 * longest) + 10))


def _reorder(cache: Cache, index: torch.Tensor) -> None:
    """Keeps the decoder states of the hypotheses `index` picks (beam search): the self-attention
    state of every layer, whatever the kernel's layout (all put the batch first). The cross-attention
    memory needs no reordering: the beams of one sentence share it."""
    def pick(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return obj.index_select(0, index)
        if isinstance(obj, dict):
            return {k: pick(v) for k, v in obj.items()}
        if isinstance(obj, (tuple, list)):
            return type(obj)(pick(v) for v in obj)
        return obj

    for state in cache.layers.values():
        if "self" in state:
            state["self"] = pick(state["self"])


@torch.inference_mode()
def greedy(arch: Arch, weights: dict[str, Any], src: torch.Tensor, src_keep: torch.Tensor,
           max_new: int | None = None) -> list[list[int]]:
    """The most likely next token at every step, for a batch of sources; ids without BOS/EOS."""
    max_new = max_new or max_new_tokens(src_keep, arch.max_len)
    PAD, BOS, EOS = special_ids(arch.vocab_size)
    b = src.shape[0]
    cache = Cache()
    tokens = torch.full((b, 1), BOS, dtype=torch.long, device=src.device)
    done = torch.zeros(b, dtype=torch.bool, device=src.device)
    out: list[torch.Tensor] = []
    for _ in range(max_new):
        logits = functional.forward(arch, weights, tokens, src=src, src_keep=src_keep, cache=cache, last_only=True)
        nxt = logits[:, -1].argmax(-1)  # (B,)
        nxt = nxt.masked_fill(done, PAD)
        out.append(nxt)
        done |= nxt == EOS
        if bool(done.all()):
            break
        tokens = nxt[:, None]
    return [_until_eos(row, arch.vocab_size) for row in torch.stack(out, 1).tolist()]


def _until_eos(ids: list[int], vocab_size: int) -> list[int]:
    """The token ids before the first EOS (PAD and BOS dropped)."""
    pad, _, eos = special_ids(vocab_size)
    if eos in ids:
        ids = ids[:ids.index(eos)]
    return [t for t in ids if t < pad]


@torch.inference_mode()
def beam_search(arch: Arch, weights: dict[str, Any], src: torch.Tensor, src_keep: torch.Tensor, beam: int = 4,
                length_penalty: float = 1.0, max_new: int | None = None, return_scores: bool = False):
    """Beam search with `beam` hypotheses per source, ranked by log-probability / length**penalty
    (length counting the EOS, as fairseq). A sentence stops once `beam` hypotheses have ended with
    EOS. beam=1 is greedy decoding, token for token. With `return_scores`: (ids, ranking scores)."""
    max_new = max_new or max_new_tokens(src_keep, arch.max_len)
    PAD, BOS, EOS = special_ids(arch.vocab_size)
    b, k = src.shape[0], beam
    src, src_keep = src.repeat_interleave(k, 0), src_keep.repeat_interleave(k, 0)  # (B*K, S)
    cache = Cache()
    tokens = torch.full((b * k, 1), BOS, dtype=torch.long, device=src.device)
    scores = torch.zeros(b, k)
    scores[:, 1:] = -math.inf  # every beam starts as the same BOS: keep one of them at first
    history = torch.empty(b * k, 0, dtype=torch.long)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]
    alive = torch.ones(b, dtype=torch.bool)
    for step in range(max_new):
        logits = functional.forward(arch, weights, tokens, src=src, src_keep=src_keep, cache=cache, last_only=True)
        logp = logits[:, -1].float().log_softmax(-1).cpu()  # (B*K, V); the bookkeeping stays on the CPU
        v = logp.shape[-1]
        total = (scores[:, :, None] + logp.view(b, k, v)).view(b, k * v)
        top, idx = total.topk(2 * k, dim=1)  # 2K candidates: even if K end here, K others go on
        new_scores = torch.full((b, k), -math.inf)
        new_beam = torch.zeros(b, k, dtype=torch.long)
        new_tok = torch.full((b, k), PAD, dtype=torch.long)
        for i in range(b):
            if not alive[i]:
                continue
            n = 0
            for s, j in zip(top[i].tolist(), idx[i].tolist()):
                if s == -math.inf:
                    break
                src_beam, tok = divmod(j, v)
                if tok == EOS:
                    if len(finished[i]) < k:
                        hyp = history[i * k + src_beam].tolist()
                        finished[i].append((s / (step + 1) ** length_penalty, hyp))
                    continue
                new_scores[i, n], new_beam[i, n], new_tok[i, n] = s, src_beam, tok
                n += 1
                if n == k:
                    break
            if len(finished[i]) >= k:
                alive[i] = False
                new_scores[i] = -math.inf
        if not bool(alive.any()):
            break
        index = (torch.arange(b)[:, None] * k + new_beam).view(-1)  # (B*K,) rows of the kept parents
        _reorder(cache, index.to(src.device))
        history = torch.cat([history.index_select(0, index), new_tok.view(-1, 1)], 1)
        scores, tokens = new_scores, new_tok.view(-1, 1).to(src.device)
    results, best_scores = [], []
    for i in range(b):
        if not finished[i]:  # out of length budget: the best unfinished hypothesis
            j = int(scores[i].argmax())
            finished[i].append((float(scores[i, j]) / history.shape[1] ** length_penalty, history[i * k + j].tolist()))
        score, best = max(finished[i], key=lambda h: h[0])
        results.append([t for t in best if t < PAD])
        best_scores.append(score)
    return (results, best_scores) if return_scores else results


@dataclass(frozen=True)
class TranslationScores:
    bleu: float
    chrf: float
    sentences: int
    seconds: float
    decoding: str  # "greedy" or "beam K"


def translate_pairs(arch: Arch, weights: dict[str, Any], pairs: Sequence[tuple[str, str]], beam: int = 1,
                    batch_size: int = 64, progress: Callable[[int], Any] | None = None, tokenizer=None) -> list[str]:
    """Translations of the sources of `pairs`, in order (batched by length for speed), on the
    device of the weights; `tokenizer`: the model's (default bytes)."""
    tok = tokenizer or ByteTokenizer()
    data = PairBatches(pairs, arch.max_len, tok)
    device = next(iter(_tensors(weights))).device
    order = sorted(range(len(pairs)), key=lambda i: len(data.src[i]))
    hyps: list[str] = [""] * len(pairs)
    for b0 in range(0, len(order), batch_size):
        idx = order[b0:b0 + batch_size]
        x, _ = data.collate(idx)
        x = {k: v.to(device) for k, v in x.items()}
        if beam == 1:
            ids = greedy(arch, weights, x["src"], x["src_keep"])
        else:
            ids = beam_search(arch, weights, x["src"], x["src_keep"], beam=beam)
        for i, row in zip(idx, ids):
            hyps[i] = tok.decode(row)
        if progress:
            progress(len(idx))
    return hyps


def _tensors(obj: Any):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def corpus_scores(hyps: Sequence[str], refs: Sequence[str]) -> tuple[float, float]:
    """(BLEU, chrF) of whole-corpus hypotheses against one reference each (sacrebleu defaults)."""
    import sacrebleu
    return (sacrebleu.corpus_bleu(list(hyps), [list(refs)]).score,
            sacrebleu.corpus_chrf(list(hyps), [list(refs)]).score)


def score_translation(arch: Arch, weights: dict[str, Any], pairs: Sequence[tuple[str, str]], beam: int = 1,
                      batch_size: int = 64, progress: Callable[[int], Any] | None = None,
                      tokenizer=None) -> TranslationScores:
    t0 = time.perf_counter()
    hyps = translate_pairs(arch, weights, pairs, beam, batch_size, progress, tokenizer)
    bleu, chrf = corpus_scores(hyps, [t for _, t in pairs])
    return TranslationScores(bleu, chrf, len(pairs), time.perf_counter() - t0,
                             "greedy" if beam == 1 else f"beam {beam}")
