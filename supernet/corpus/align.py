"""Line aligner for two editions of a play: First Folio spelling -> modern spelling.

The two Gutenberg editions print the same speeches with different spelling, punctuation, speaker
conventions and (for prose) different line breaks. We extract the spoken lines of each edition and
align them in three steps:

1. anchors: lines whose consonant skeleton is equal and unique in both editions (a patience-diff
   idea: unique lines are almost never wrong), chained monotonically by a longest increasing
   subsequence; repeated inside every gap, where lines that were not unique overall often are;
2. inside the gaps that have no anchors left, a small banded DP with moves 1-1, 1-0, 0-1, 2-1, 1-2
   (prose is re-wrapped between editions, so one line often matches two), scored on skeletons;
3. every pair carries its similarity so the corpus builder can filter.

All of it is pure Python; the whole First Folio aligns in a few seconds on one core.
"""

import bisect
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class AlignedPair:
    src: str  # Folio spelling (one or two source lines joined by a space)
    tgt: str  # modern spelling
    score: float  # similarity of the spelling skeletons, 0..1


# ----------------------------------------------------------------------------------------------
# spelling skeletons

# Folio spelling differs from modern mostly in u/v, i/j/y, a silent final e and doubled letters
# ("vnfold"/"unfold", "selfe"/"self", "Iohn"/"John", "sicke"/"sick"), so we erase exactly those.
_SKEL = str.maketrans({"v": "u", "j": "i", "y": "i", "e": None})
_VOWELS = str.maketrans({"a": None, "i": None, "o": None, "u": None})
_NONLETTER = re.compile(r"[^a-z]+")
_DOUBLE = re.compile(r"(.)\1+")


def skeleton(line: str) -> str:
    """Lowercase letters only, u/v -> u, i/j/y -> i, no e, doubled letters collapsed."""
    s = _NONLETTER.sub("", line.lower().replace("&", "and")).translate(_SKEL)
    return _DOUBLE.sub(r"\1", s)


def _anchor_key(skel: str) -> str:
    # Vowels also vary ("then"/"than", "strook"/"struck", "Barnardo"/"Bernardo"); consonants
    # rarely do, so anchors compare consonants only. Uniqueness guards against chance equality.
    return _DOUBLE.sub(r"\1", skel.translate(_VOWELS))


def _grams(skel: str) -> frozenset:
    return frozenset(zip(skel, skel[1:], skel[2:]))  # character trigrams


def similarity(a: str, b: str) -> float:
    """Dice coefficient of the character-trigram sets of two skeletons (1.0 = same skeleton)."""
    if a == b:
        return 1.0
    ga, gb = _grams(a), _grams(b)
    if not ga or not gb:
        return 0.0
    return 2.0 * len(ga & gb) / (len(ga) + len(gb))


# ----------------------------------------------------------------------------------------------
# spoken lines of each edition

_WS = re.compile(r"\s+")

# Folio: speeches start on an indented line "  Fran. Nay answer me: ..."; continuation lines and
# stage directions are flush left. Headings are Latin ("Actus Primus. Scoena Prima."), the text
# ends at "FINIS" (some plays list the actors after it).
_F_HEADING = re.compile(r"^(actus|scena|scoena|scaena|finis actus)\b", re.I)
_F_CAPS_HEADING = re.compile(r"^(THE )?(PROLOGVE|PROLOGUE|EPILOGVE|EPILOGUE|INDVCTION|INDUCTION)\b")
_F_DIRECTION = re.compile(
    r"^(Enter|Exit|Exeunt|Manet|Manent|Flourish|Florish|Alarum|Alarums|Senet|Sennet|Hoboyes|"
    r"Excursions|Retreat|Tucket)\b"
)
_F_SPEECH = re.compile(r"^ {2,4}\S")
_F_END = re.compile(r"^FINIS\b")
_PUNCT_END = re.compile(r"[.:,]$")


def _strip_folio_speaker(line: str) -> str:
    tok = line.split(" ", 2)  # line is whitespace-normalised
    if _PUNCT_END.search(tok[0]):  # "Fran." "Master:" "1.Cit."
        k = 1
    elif len(tok) > 1 and tok[1] in {".", ","}:  # "Iago . text"
        k = 2
    elif len(tok) > 1 and len(tok[1]) <= 9 and tok[1].endswith((".", ":")):  # "King Iohn." "2 Gent."
        k = 2
    else:  # "Caes You may see": an unpunctuated abbreviation
        k = 1
    return " ".join(tok[k:]) if k < len(tok) else ""


def folio_lines(text: str) -> list[str]:
    """Spoken lines of a First Folio Gutenberg text, speaker prefixes and directions removed."""
    raw = text.splitlines()
    end = next((i for i, l in enumerate(raw) if _F_END.match(l)), len(raw))
    raw = raw[:end]
    # the title lines come before the first heading, direction or speech
    start = next((i for i, l in enumerate(raw) if _F_HEADING.match(l) or _F_CAPS_HEADING.match(l)
                  or _F_DIRECTION.match(l) or _F_SPEECH.match(l)), 0)
    out, in_direction = [], False
    for line in raw[start:]:
        if not line.strip():
            in_direction = False
            continue
        if _F_SPEECH.match(line):
            in_direction = False
            text_ = _strip_folio_speaker(_WS.sub(" ", line.strip()))
        else:
            if in_direction:  # a wrapped direction: "Enter ... and Helena,\nLord\nLafew, ..."
                in_direction = not line.rstrip().endswith((".", "!", "?", "]"))
                continue
            if _F_HEADING.match(line) or _F_CAPS_HEADING.match(line):
                continue
            if _F_DIRECTION.match(line):
                in_direction = not line.rstrip().endswith((".", "!", "?", "]"))
                continue
            text_ = _WS.sub(" ", line.strip())
        if text_:
            out.append(text_)
    return out


# Modern: the speaker is alone on the first line of a paragraph ("Ber.", "FIRST CITIZEN.",
# "Hor. and Mar."), or inline in capitals ("NORFOLK. I thank your Grace,"); directions are in
# [brackets], possibly over several lines; a PERSONS REPRESENTED list precedes the first act.
_M_START = re.compile(r"^(ACT|Act)\s+\S+\s*$|^(THE )?(PROLOGUE|INDUCTION)\b\.?\s*$")
_M_HEADING = re.compile(r"^(ACT|Act)\s+\S+\s*$|^(SCENE|Scene)\b|^(THE )?(PROLOGUE|EPILOGUE|INDUCTION)\b")
_M_LABEL_WORD = re.compile(r"^([A-Z][\w'.-]*|and|of|the|de|le|la|&|\d+\.?)$")
_M_INLINE_LABEL = re.compile(r"^([A-Z][A-Z'&. -]*[A-Z])\.\s+(\S.*)$")
_BRACKET = re.compile(r"\[[^\]]*\]")


def _is_label(line: str) -> bool:
    words = line.split()
    return 0 < len(words) <= 5 and len(line) <= 40 and "," not in line \
        and all(_M_LABEL_WORD.match(w) for w in words)


def modern_lines(text: str) -> list[str]:
    """Spoken lines of a modern-spelling Gutenberg play, speakers and directions removed."""
    raw = text.splitlines()
    start = next((i for i, l in enumerate(raw) if _M_START.match(l.strip())), 0)
    out, in_bracket, para_start = [], False, True
    for line in raw[start:]:
        s = line.strip()
        if not s:
            para_start = True
            continue
        if in_bracket:  # inside a multi-line [direction]
            if "]" not in s:
                continue
            s, in_bracket = s[s.index("]") + 1:].strip(), False
        s = _BRACKET.sub("", s)
        if "[" in s:
            s, in_bracket = s[:s.index("[")], True
        s = _WS.sub(" ", s).strip()
        first, para_start = para_start, False
        if not s or _M_HEADING.match(s):
            continue
        if first and _is_label(s):
            continue
        m = _M_INLINE_LABEL.match(s) if first else None
        if m and len(m.group(1)) >= 2:
            s = m.group(2)
        out.append(s)
    return out


# ----------------------------------------------------------------------------------------------
# alignment

_MIN_ANCHOR = 6  # consonants; shorter unique keys ("Exit") are too often chance matches
_GAIN_THRESHOLD = 0.45  # a pair adds to the DP score only if its similarity beats this
_BAND = 25  # half-width of the DP band around the gap diagonal (lines)
_MOVES = ((1, 1), (1, 0), (0, 1), (2, 1), (1, 2), (2, 2))


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


class _Gap:
    """Banded DP over one anchor-free gap; sims are memoised because moves share spans."""

    def __init__(self, fs: list[str], ms: list[str]):
        self.fs, self.ms, self.memo = fs, ms, {}

    def gain(self, i: int, a: int, j: int, b: int) -> float:
        key = (i, a, j, b)
        g = self.memo.get(key)
        if g is None:
            f = "".join(self.fs[i:i + a])
            m = "".join(self.ms[j:j + b])
            sim = similarity(f, m)
            # weight by length: a confident pair covering more text is worth more, so a line
            # split across two is merged rather than matched half-way
            g = self.memo[key] = ((sim - _GAIN_THRESHOLD) * (len(f) + len(m)), sim)
        return g

    def solve(self, i0: int, i1: int, j0: int, j1: int) -> list[tuple[int, int, int, int, float]]:
        n, m = i1 - i0, j1 - j0
        if n == 0 or m == 0:
            return []
        neg = float("-inf")
        # best[i][j] over a band around the diagonal (0,0)-(n,m); row i reaches into row i+1's
        # band, so every cell in it is reachable by skips and the back-trace never breaks
        lo = [max(0, i * m // n - _BAND) for i in range(n + 1)]
        hi = [min(m, (i + 1) * m // n + _BAND) for i in range(n + 1)]
        best = [dict() for _ in range(n + 1)]
        back = [dict() for _ in range(n + 1)]
        for i in range(n + 1):
            bi, ki = best[i], back[i]
            for j in range(lo[i], hi[i] + 1):
                if i == 0 and j == 0:
                    bi[0] = 0.0
                    continue
                top, arg = neg, None
                for a, b in _MOVES:
                    pi, pj = i - a, j - b
                    if pi < 0 or pj < 0:
                        continue
                    prev = best[pi].get(pj)
                    if prev is None:
                        continue
                    s = prev + (self.gain(i0 + pi, a, j0 + pj, b)[0] if a and b else 0.0)
                    if s > top:
                        top, arg = s, (a, b)
                if arg is not None:
                    bi[j], ki[j] = top, arg
        out, i, j = [], n, m
        while i or j:
            a, b = back[i][j]
            i, j = i - a, j - b
            if a and b:
                g, sim = self.gain(i0 + i, a, j0 + j, b)
                if g > 0:
                    out.append((i0 + i, a, j0 + j, b, sim))
        return out[::-1]


def align_lines(src: list[str], tgt: list[str]) -> list[AlignedPair]:
    """Align two line sequences of the same text in different spellings (monotone, many-to-few)."""
    fs = [skeleton(l) for l in src]
    ms = [skeleton(l) for l in tgt]
    fk = [_anchor_key(s) for s in fs]
    mk = [_anchor_key(s) for s in ms]
    gap = _Gap(fs, ms)
    found: list[tuple[int, int, int, int, float]] = []
    todo = [(0, len(src), 0, len(tgt))]
    while todo:  # patience-style recursion, made iterative: anchor, then look inside each gap
        i0, i1, j0, j1 = todo.pop()
        if i0 >= i1 or j0 >= j1:
            continue
        anchors = _anchors(fk, mk, i0, i1, j0, j1)
        if not anchors:
            found.extend(gap.solve(i0, i1, j0, j1))
            continue
        pi, pj = i0, j0
        for i, j in anchors:
            todo.append((pi, i, pj, j))
            found.append((i, 1, j, 1, similarity(fs[i], ms[j])))
            pi, pj = i + 1, j + 1
        todo.append((pi, i1, pj, j1))
    found.sort()
    return [AlignedPair(" ".join(src[i:i + a]), " ".join(tgt[j:j + b]), round(sim, 4))
            for i, a, j, b, sim in found]


def align_play(folio_text: str, modern_text: str) -> list[AlignedPair]:
    """Aligned (Folio line, modern line) pairs of one play, in play order, unfiltered."""
    return align_lines(folio_lines(folio_text), modern_lines(modern_text))
