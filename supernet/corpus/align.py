"""Line aligner for two editions of a play: First Folio spelling -> modern spelling.

The two Gutenberg editions print the same speeches with different spelling, punctuation and
speaker conventions, and prose with different line breaks. Given the spoken lines of each
(`editions.py`), we align them in three steps:

1. anchors: lines whose consonant skeleton is equal and unique in both editions (the patience-diff
   idea: unique lines are almost never wrong), chained monotonically by a longest increasing
   subsequence; repeated inside every gap, where lines that were not unique overall often are;
2. inside gaps with no anchors left, a banded DP with moves 1-1, 1-0, 0-1, 2-1, 1-2, 2-2 (a verse
   line printed as two, or prose re-wrapped) scored by a similarity of the skeletons;
3. boundary repair: where a pair's last words disagree (re-wrapped prose), the run of adjacent
   pairs up to the next agreeing end is aligned word by word and cut again where both editions
   agree, at a shared line end or shared sentence punctuation.

Every pair carries its similarity; filtering is the corpus builder's job. Pure Python: the 35
plays align in well under 30 s on one core (anchors cover most lines, so the DP stays small).
"""

import bisect
import difflib
import re
from dataclasses import dataclass

from .editions import folio_lines, modern_lines


@dataclass(frozen=True)
class AlignedPair:
    src: str  # Folio spelling: a line, two lines joined by a space, or a re-cut prose segment
    tgt: str  # modern spelling, likewise
    score: float  # similarity of the spelling skeletons, 0..1


# ----------------------------------------------------------------------------------------------
# spelling skeletons

# Folio spelling differs from modern mostly in u/v, i/j/y, a silent final e and doubled letters
# ("vnfold"/"unfold", "selfe"/"self", "Iohn"/"John", "sicke"/"sick"), so we erase exactly those.
_SKEL = str.maketrans({"v": "u", "j": "i", "y": "i", "e": None})
_VOWELS = str.maketrans({"a": None, "i": None, "o": None, "u": None})
_NONLETTER = re.compile(r"[^a-z\n]+")
# repeats after a letter; deleting them needs no template expansion, which is the slow part
# of re.sub. "." never matches "\n", so the lines of a batch stay apart.
_DOUBLE = re.compile(r"(?<=(.))\1+")


def skeleton(line: str) -> str:
    """Lowercase letters only, u/v -> u, i/j/y -> i, no e, doubled letters collapsed."""
    return _skeletons([line])[0]


def _skeletons(lines: list[str]) -> list[str]:
    # one regex pass over the joined lines is ~10x faster than one per line
    s = _NONLETTER.sub("", "\n".join(lines).lower().replace("&", "and")).translate(_SKEL)
    return _DOUBLE.sub("", s).split("\n")


def _anchor_keys(skels: list[str]) -> list[str]:
    # Vowels also vary ("then"/"than", "strook"/"struck", "Barnardo"/"Bernardo"); consonants
    # rarely do, so anchors compare consonants only. Uniqueness guards against chance equality.
    return _DOUBLE.sub("", "\n".join(skels).translate(_VOWELS)).split("\n")


def _grams(skel: str) -> frozenset:
    return frozenset(zip(skel, skel[1:], skel[2:]))  # character trigrams


def similarity(a: str, b: str) -> float:
    """Dice coefficient of the character-trigram sets of two skeletons (1.0 = same skeleton)."""
    if not a or not b:  # punctuation only: nothing to compare
        return 0.0
    if a == b:
        return 1.0
    ga, gb = _grams(a), _grams(b)
    if not ga or not gb:
        return 0.0
    return 2.0 * len(ga & gb) / (len(ga) + len(gb))


# ----------------------------------------------------------------------------------------------
# alignment

_MIN_ANCHOR = 6  # consonants; shorter unique keys ("Exit") are too often chance matches
_GAIN_THRESHOLD = 0.45  # a pair adds to the DP score only if its similarity beats this
_BAND = 12  # half-width of the DP band around the gap diagonal (lines)


def _lis(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Longest chain of (i, j) pairs increasing in both (pairs sorted by i, all i distinct)."""
    tails, tail_idx, prev = [], [], [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        p = bisect.bisect_left(tails, j)
        if p == len(tails):
            tails.append(j)
            tail_idx.append(k)
        else:
            tails[p], tail_idx[p] = j, k
        prev[k] = tail_idx[p - 1] if p else -1
    out, k = [], tail_idx[-1] if tail_idx else -1
    while k >= 0:
        out.append(pairs[k])
        k = prev[k]
    return out[::-1]


def _anchors(fk: list[str], mk: list[str], i0: int, i1: int, j0: int, j1: int) -> list[tuple[int, int]]:
    count: dict[str, list[int]] = {}
    for i in range(i0, i1):
        if len(fk[i]) >= _MIN_ANCHOR:
            c = count.setdefault(fk[i], [0, 0, -1])
            c[0] += 1
            c[2] = i
    pairs = []
    for j in range(j0, j1):
        c = count.get(mk[j])
        if c is not None:
            c[1] += 1
    for j in range(j0, j1):
        c = count.get(mk[j])
        if c is not None and c[0] == 1 and c[1] == 1:
            pairs.append((c[2], j))
    pairs.sort()
    return _lis(pairs)


def _solve_gap(fs: list[str], ms: list[str], i0: int, i1: int, j0: int, j1: int,
               ) -> list[tuple[int, int, int, int, float]]:
    """Best monotone matching of F[i0:i1] and M[j0:j1] by a DP over a band of the gap diagonal.

    Returns (i, a, j, b, similarity) for matched spans F[i:i+a] ~ M[j:j+b]. A match adds
    (sim - threshold) * size, a skip adds 0; so only pairs beating the threshold are ever used.
    """
    n, m = i1 - i0, j1 - j0
    if n == 0 or m == 0:
        return []
    # trigram sets of the 1- and 2-line spans, local to the gap: spans[a][i] covers lines i..i+a-1
    f1 = [_grams(fs[i]) for i in range(i0, i1)]
    f2 = [_grams(fs[i] + fs[i + 1]) for i in range(i0, i1 - 1)]
    m1 = [_grams(ms[j]) for j in range(j0, j1)]
    m2 = [_grams(ms[j] + ms[j + 1]) for j in range(j0, j1 - 1)]
    fsp, msp = (None, f1, f2), (None, m1, m2)
    thr = _GAIN_THRESHOLD

    def gain(i: int, a: int, j: int, b: int) -> tuple[float, float]:
        f, g = fsp[a][i], msp[b][j]
        nf, ng = len(f), len(g)
        # Dice <= 2 min / sum: skip the intersection when even that can't beat the threshold
        if 2 * min(nf, ng) <= thr * (nf + ng):
            return 0.0, 0.0
        sim = 2.0 * len(f & g) / (nf + ng)
        # weight by size: a confident pair covering more text is worth more, so a line split
        # in two is merged rather than matched half-way
        return (sim - thr) * (nf + ng), sim

    # rows are dicts over a band around the diagonal (0,0)-(n,m); row i reaches into row i+1's
    # band, so every cell in it is reachable by skips and the back-trace never breaks
    best: list[dict[int, float]] = [{} for _ in range(n + 1)]
    back: list[dict[int, tuple[int, int]]] = [{} for _ in range(n + 1)]
    for i in range(n + 1):
        lo, hi = max(0, i * m // n - _BAND), min(m, (i + 1) * m // n + _BAND)
        bi, ki = best[i], back[i]
        b1 = best[i - 1] if i >= 1 else {}
        b2 = best[i - 2] if i >= 2 else {}
        for j in range(lo, hi + 1):
            top, arg = (0.0, None) if i == 0 and j == 0 else (-1.0, None)
            p = b1.get(j)  # skip a Folio line
            if p is not None:
                top, arg = p, (1, 0)
            p = bi.get(j - 1)  # skip a modern line
            if p is not None and p > top:
                top, arg = p, (0, 1)
            for a, b, prow in ((1, 1, b1), (2, 1, b2), (1, 2, b1), (2, 2, b2)):
                p = prow.get(j - b)
                if p is None:
                    continue
                f, g = fsp[a][i - a], msp[b][j - b]  # inlined gain(): this loop is the hot spot
                nf, ng = len(f), len(g)
                if 2 * min(nf, ng) <= thr * (nf + ng):
                    continue
                p += (2.0 * len(f & g) / (nf + ng) - thr) * (nf + ng)
                if p > top:
                    top, arg = p, (a, b)
            bi[j], ki[j] = top, arg
    out, i, j = [], n, m
    while i or j:
        a, b = back[i][j]
        i, j = i - a, j - b
        if a and b:
            out.append((i0 + i, a, j0 + j, b, gain(i, a, j, b)[1]))
    return out[::-1]


# ----------------------------------------------------------------------------------------------
# boundary repair: prose is re-wrapped between editions, so consecutive line pairs often overlap
# ("If hee doe feare God, a must necessarilie keepe" ~ "If he do fear God, a' must necessarily
# keep peace: if he break the"). Where a pair's last words disagree, we take the run of adjacent
# pairs up to the next agreeing end, align it word by word and cut it again where both editions
# agree: at a shared line end or shared sentence punctuation, with aligned words on both sides.

_SENTENCE_END = re.compile(r"[.?!;:][)'\"\]-]*$")


def _edge_keys(lines: list[str], first: bool) -> list[tuple[str, str]]:
    """(skeleton of the edge word, of the two edge words) per line, first or last, batched."""
    edges = [(l.split()[:2] if first else l.split()[-2:]) or [""] for l in lines]
    sk = iter(_skeletons([w for e in edges for w in e]))
    out = []
    for e in edges:
        k = [next(sk) for _ in e]
        out.append((k[0], "".join(k)) if first else (k[-1], "".join(k)))
    return out


def _agree(f: tuple[str, str], m: tuple[str, str], first: bool) -> bool:
    # "goodnight" ~ "good night": the edge word of one side may span two on the other
    if not (f[0] and m[0]):
        return False
    if first:
        return f[0] == m[0] or f[1].startswith(m[0]) or m[1].startswith(f[0])
    return f[0] == m[0] or f[1].endswith(m[0]) or m[1].endswith(f[0])


def _words(lines: list[str]) -> tuple[list[str], list[bool]]:
    words, line_end = [], []
    for line in lines:
        w = line.split()
        words += w
        line_end += [False] * (len(w) - 1) + [True]
    return words, line_end


def _recut(src: list[str], tgt: list[str], clean_start: bool, clean_end: bool,
           ) -> list[tuple[str, str]]:
    """Re-segment a run of lines that align as a whole into pairs with agreeing boundaries.

    A run that starts or stops at a skipped line with its edge words disagreeing has a ragged
    edge: the words before the first (after the last) agreed cut have no trustworthy partner
    and are dropped.
    """
    fw, fend = _words(src)
    mw, mend = _words(tgt)
    match = [-1] * (len(fw) + 1)
    match[len(fw)] = len(mw)  # a sentinel: the run's own end always agrees
    sm = difflib.SequenceMatcher(None, _skeletons(fw), _skeletons(mw), autojunk=False)
    for a, b, size in sm.get_matching_blocks():
        for k in range(size):
            match[a + k] = b + k
    out, p0, q0 = [], 0, 0
    for p in range(len(fw)):
        q = match[p]
        if q < 0 or match[p + 1] != q + 1:  # the cut must sit between two aligned word pairs
            continue
        if (fend[p] and mend[q]) or (_SENTENCE_END.search(fw[p]) and _SENTENCE_END.search(mw[q])):
            if p0 or clean_start:
                out.append((" ".join(fw[p0:p + 1]), " ".join(mw[q0:q + 1])))
            p0, q0 = p + 1, q + 1
    if clean_end and (p0 or clean_start) and p0 < len(fw) and q0 < len(mw):
        out.append((" ".join(fw[p0:]), " ".join(mw[q0:])))
    return out


def _repair(src: list[str], tgt: list[str], found: list[tuple[int, int, int, int, float]],
            ) -> list[AlignedPair]:
    fs, ms = _edge_keys(src, True), _edge_keys(tgt, True)
    fe, me = _edge_keys(src, False), _edge_keys(tgt, False)
    start = [_agree(fs[i], ms[j], True) for i, _, j, _, _ in found]
    end = [_agree(fe[i + a - 1], me[j + b - 1], False) for i, a, j, b, _ in found]
    out, k = [], 0
    while k < len(found):
        i, a, j, b, sim = found[k]
        if start[k] and end[k]:
            out.append(AlignedPair(" ".join(src[i:i + a]), " ".join(tgt[j:j + b]), round(sim, 4)))
            k += 1
            continue
        l = k  # extend over adjacent pairs up to one whose ends agree
        while not end[l] and l + 1 < len(found):
            li, la, lj, lb, _ = found[l]
            if found[l + 1][:3:2] != (li + la, lj + lb):
                break
            l += 1
        i1, j1 = found[l][0] + found[l][1], found[l][2] + found[l][3]
        for f, m in _recut(src[i:i1], tgt[j:j1], start[k], end[l]):
            fsk, msk = _skeletons([f, m])
            out.append(AlignedPair(f, m, round(similarity(fsk, msk), 4)))
        k = l + 1
    return out


def align_lines(src: list[str], tgt: list[str]) -> list[AlignedPair]:
    """Align two line sequences of the same text in different spellings (monotone, many-to-few)."""
    fs, ms = _skeletons(src), _skeletons(tgt)
    fk, mk = _anchor_keys(fs), _anchor_keys(ms)
    found: list[tuple[int, int, int, int, float]] = []
    todo = [(0, len(src), 0, len(tgt))]
    while todo:  # patience-style recursion, made iterative: anchor, then look inside each gap
        i0, i1, j0, j1 = todo.pop()
        if i0 >= i1 or j0 >= j1:
            continue
        anchors = _anchors(fk, mk, i0, i1, j0, j1)
        if not anchors:
            found.extend(_solve_gap(fs, ms, i0, i1, j0, j1))
            continue
        pi, pj = i0, j0
        for i, j in anchors:
            todo.append((pi, i, pj, j))
            found.append((i, 1, j, 1, similarity(fs[i], ms[j])))
            pi, pj = i + 1, j + 1
        todo.append((pi, i1, pj, j1))
    found.sort()
    return _repair(src, tgt, found)


def align_play(folio_text: str, modern_text: str) -> list[AlignedPair]:
    """Aligned (Folio line, modern line) pairs of one play, in play order, unfiltered."""
    return align_lines(folio_lines(folio_text), modern_lines(modern_text))
