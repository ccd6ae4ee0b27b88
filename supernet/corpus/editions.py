"""Spoken lines of the two Gutenberg editions of a play (First Folio and modern spelling).

Only what the actors say is kept: speaker names, stage directions, act/scene headings, titles and
cast lists are removed, one printed line per item. Extraction need not be perfect: a leftover
line finds no partner in the other edition and the aligner skips it.
"""

import collections
import re

# Folio: a speech starts on an indented line "  Fran. Nay answer me: Stand & vnfold"; its
# continuation lines and the stage directions are flush left. Headings are Latin ("Actus Primus.
# Scoena Prima."); the text ends at "FINIS" (some plays list the actors after it).
_F_SPEECH = re.compile(r"^ {2,4}\S")
_F_HEADING = re.compile(r"^(actus|scena|scoena|scaena|finis actus)\b", re.I)
_F_CAPS_HEADING = re.compile(r"^(THE )?(PROLOGVE|PROLOGUE|EPILOGVE|EPILOGUE|INDVCTION|INDUCTION)\b")
_F_DIRECTION = re.compile(
    r"^(Enter|Exit|Exeunt|Manet|Manent|Flourish|Florish|Alarum|Alarums|Senet|Sennet|Hoboyes|"
    r"Hoboies|Excursions|Retreat|Tucket)\b"
    r"|^(Thunder|March|Cornets|Sound|Trumpets|Drum|Musicke|Storme|Noyse|Shout)\."  # "Thunder. Enter"
)
_F_END = re.compile(r"^FINIS\b")
_F_FLUSH_SPEAKER = re.compile(r"^([A-Z]\w{0,7}\.) \S")
_PUNCT_END = re.compile(r"[.:,]$")
_CLOSED = (".", "!", "?", "]")


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
    raw = raw[:next((i for i, l in enumerate(raw) if _F_END.match(l)), len(raw))]
    # the title comes before the first heading, direction or speech
    start = next((i for i, l in enumerate(raw) if _F_SPEECH.match(l) or _F_HEADING.match(l)
                  or _F_CAPS_HEADING.match(l) or _F_DIRECTION.match(l)), 0)
    # Othello prints one speaker ("Aemil.", the "AE" ligature lost) flush left every time; a
    # prefix that starts that many flush-left lines of one play is a speaker, not a word
    flush = collections.Counter(m.group(1) for l in raw if (m := _F_FLUSH_SPEAKER.match(l)))
    flush_speakers = {t for t, c in flush.items() if c >= 20 and not _F_DIRECTION.match(t)}
    out, in_direction = [], False
    for line in raw[start:]:
        if not line.strip():
            in_direction = False
            continue
        if _F_SPEECH.match(line):
            in_direction = False
            s = _strip_folio_speaker(" ".join(line.split()))
        elif in_direction:  # a wrapped direction: "Enter ... and Helena,\nLord\nLafew, ..."
            in_direction = not line.rstrip().endswith(_CLOSED)
            continue
        elif _F_HEADING.match(line) or _F_CAPS_HEADING.match(line):
            continue
        elif _F_DIRECTION.match(line):
            in_direction = not line.rstrip().endswith(_CLOSED)
            continue
        else:
            s = " ".join(line.split())
            if s.split(" ", 1)[0] in flush_speakers:
                s = _strip_folio_speaker(s)
        if s:
            out.append(s)
    return out


# Modern: the speaker stands alone on the first line of a paragraph ("Ber.", "FIRST CITIZEN.",
# "Hor. and Mar.") or inline in capitals ("NORFOLK. I thank your Grace,"); directions are in
# [brackets], sometimes over several lines; a PERSONS REPRESENTED list precedes the first act.
_M_ACT = r"(ACT|Act)\s+([IVX]+|\d+|FIRST|SECOND|THIRD|FOURTH|FIFTH)\b"  # "ACT II. SCENE I." too
_M_START = re.compile(rf"^{_M_ACT}|^(THE )?(PROLOGUE|INDUCTION)\b\.?\s*$")
_M_HEADING = re.compile(rf"^{_M_ACT}|^(SCENE|Scene)\b|^(THE )?(PROLOGUE|EPILOGUE|INDUCTION)\b")
_M_LABEL_WORD = re.compile(r"^([A-Z][\w'.-]*|and|of|the|de|le|la|&|\d+\.?)$")
_M_INLINE_LABEL = re.compile(r"^([A-Z][A-Z'&. -]*[A-Z])\.\s+(\S.*)$")
_BRACKET = re.compile(r"\[[^\]]*\]")


def _is_label(line: str) -> bool:
    # "Ay, by heaven, my lord." must not pass: labels are a few capitalised words, no commas
    words = line.split()
    return (0 < len(words) <= 5 and len(line) <= 40 and "," not in line
            and all(_M_LABEL_WORD.match(w) for w in words))


def modern_lines(text: str) -> list[str]:
    """Spoken lines of a modern-spelling Gutenberg play, speakers and directions removed."""
    raw = text.splitlines()
    start = next((i for i, l in enumerate(raw) if _M_START.match(l.strip())), 0)
    out, in_bracket, para_start = [], False, True
    for line in raw[start:]:
        s = line.strip().replace("{", "[")  # one direction is typed "{Kissing her.]"
        if not s:
            para_start = True
            continue
        if in_bracket:  # inside a multi-line [direction]
            if "]" not in s:
                continue
            s, in_bracket = s[s.index("]") + 1:], False
        s = _BRACKET.sub("", s)
        if "[" in s:
            s, in_bracket = s[:s.index("[")], True
        s = " ".join(s.split())
        if not s:  # a direction alone: the speaker label may still follow in this paragraph
            continue
        first, para_start = para_start, False
        if _M_HEADING.match(s) or (first and _is_label(s)):
            continue
        m = _M_INLINE_LABEL.match(s) if first else None
        if m and len(m.group(1)) >= 2:
            s = m.group(2)
        out.append(s)
    return out
