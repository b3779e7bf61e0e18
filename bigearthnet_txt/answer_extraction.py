"""Read the answer out of what a model wrote: yes/no, an MCQ letter, a box.

Every extractor returns an :class:`Extraction`: the value (``None`` when unparseable) and, when
unparseable, the reason. ``strict=True`` keeps the release's exact formats (``yes``/``no``, one
letter ``a``–``d``, ``[x1 y1, x2 y2]``), byte for byte. Otherwise these rules apply, in order
(letters and words are matched case-insensitively; "marker" means a letter written ``b)``,
``(b)``, ``b.`` or ``b:``):

Binary (``extract_binary``)
    B1. The words ``yes`` and ``no`` (whole words) are found; none → unparseable.
    B2. The first one is the answer (``"Yes, there is."`` → yes, ``"No."`` → no), unless the
        other word follows it with only spaces, punctuation or ``or`` between (``"no, yes"``,
        ``"yes/no"``, ``"Yes or no"``) → ambiguous.

MCQ (``extract_choice``, with the row's four option texts)
    M1. The whole output is one letter, alone or as a marker (``b``, ``b)``, ``(b)``, ``B.``).
    M2. The output starts with a marker followed by text (``"B. Pastures"``) → that letter; if the
        text is exactly another option's text or holds another marker (``"b) or c)"``) →
        ambiguous.
    M3. ``answer``/``option`` followed by a letter (``"Answer: b"``, ``"The answer is (b)"``,
        ``"option c"``) → that letter (``a`` followed by a word is the article: ``"The answer is
        a mixed forest"`` goes on to M5); two different letters → ambiguous.
    M4. Markers anywhere (``"I think c) is right"``): one distinct letter → it; several →
        ambiguous (``"b) or c)"``).
    M5. Option text: the output (without a trailing period) equals one option's text, or names
        exactly one option as a whole phrase (an option inside another named option does not
        count) → that option; two or more → ambiguous.
    Anything else (``"a or b"``, ``"e"``) is unparseable.

Boxes (``extract_box``, with ``box_scale`` ``unit``/``1000``/``pixels``, see ``box_scales``)
    X1. The content of a ``<box>…</box>`` tag if there is one, else the whole output.
    X2. Boxes written ``[x1 y1, x2 y2]``, ``[x1, y1, x2, y2]`` (spaces or commas between the
        numbers), ``(x1,y1),(x2,y2)``, or — inside ``<box>`` — any four numbers; none →
        unparseable; two different boxes → ambiguous.
    X3. Divided by the scale (1, 1000 or 120); any coordinate outside [0, 1] afterwards →
        unparseable ("out of range for the scale"); x2 < x1 or y2 < y1 → unparseable (corners are
        not swapped). A 0–1 box read with ``box_scale="1000"`` is in range but tiny: it parses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bigearthnet_txt.annotations import BOX_PATTERN, answer_index, parse_binary
from bigearthnet_txt.box_scales import check_scale, to_unit
from bigearthnet_txt.schema import MCQ_LETTERS

_NUMBER = r"[-+]?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?"
_YES_NO_RE = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_BETWEEN_RE = re.compile(r"^(?:[\s\W]|\bor\b)*$", re.IGNORECASE)
_LETTER_ONLY_RE = re.compile(r"^\(?([a-d])\)?[.:]?$", re.IGNORECASE)
_LEADING_MARKER_RE = re.compile(r"^(?:\(([a-d])\)|([a-d])[).:])\s+(.+)$", re.IGNORECASE | re.DOTALL)
_ANSWER_LETTER_RE = re.compile(
    r"\b(?:answer|option)\b(?:\s+is)?\s*[:\-]?\s*\(?([a-d])\b(?![-'])"
    r"(?!(?<=[aA])\s+[a-zA-Z])",  # "is a forest": the article, not a letter
    re.IGNORECASE,
)
_MARKER_RE = re.compile(r"(?:\(([a-d])\)|\b([a-d])\))", re.IGNORECASE)
_BOX_TAG_RE = re.compile(r"<box>(.*?)</box>", re.IGNORECASE | re.DOTALL)
_STRICT_BOX_RE = re.compile(BOX_PATTERN)
_BRACKET_BOX_RE = re.compile(
    rf"\[\s*({_NUMBER})[\s,]+({_NUMBER})\s*,\s*({_NUMBER})[\s,]+({_NUMBER})\s*\]"
)
_PAIR_BOX_RE = re.compile(
    rf"\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)\s*,?\s*\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)"
)
_NUMBER_RE = re.compile(_NUMBER)
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Extraction:
    """What was read: ``value`` (bool, letter index 0–3 or box tuple; ``None`` if unparseable)
    and ``reason`` (why it is unparseable; ``""`` when parsed)."""

    value: object = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.value is not None


def _fail(reason: str) -> Extraction:
    return Extraction(None, reason)


# --- binary ----------------------------------------------------------------------------------


def extract_binary(text: str | None, strict: bool = False) -> Extraction:
    """``True``/``False`` from a yes/no answer (rules B1–B2; ``strict``: exactly ``yes``/``no``)."""
    if text is None:
        return _fail("no prediction")
    if strict:
        try:
            return Extraction(parse_binary(text))
        except ValueError:
            return _fail("not exactly 'yes' or 'no'")
    words = list(_YES_NO_RE.finditer(text))
    if not words:
        return _fail("no yes/no word")
    first = words[0]
    answer = first[1].lower()
    if len(words) > 1 and words[1][1].lower() != answer:
        if _BETWEEN_RE.match(text[first.end() : words[1].start()]):
            return _fail("yes and no side by side")
    return Extraction(answer == "yes")


# --- multiple choice -------------------------------------------------------------------------


def _clean(text: str) -> str:
    text = " ".join(text.strip().lower().split())
    return text[:-1].rstrip() if text.endswith(".") else text


def _named_options(text: str, options: Sequence[str]) -> set[int]:
    """Indices of the options whose text appears in ``text`` as a whole phrase, without those
    that only appear inside another appearing option's text."""
    cleaned = [_clean(o) for o in options]
    found = {
        i
        for i, option in enumerate(cleaned)
        if option and re.search(rf"(?<!\w){re.escape(option)}(?!\w)", text)
    }
    return {i for i in found if not any(j != i and cleaned[i] in cleaned[j] for j in found)}


def extract_choice(
    text: str | None, options: Sequence[str] | None = None, strict: bool = False
) -> Extraction:
    """The option index 0–3 (a–d) of an MCQ answer (rules M1–M5; ``options``: the four option
    texts, ``None`` skips M2's check and M5; ``strict``: exactly one lower-case letter)."""
    if text is None:
        return _fail("no prediction")
    if strict:
        try:
            return Extraction(answer_index(text))
        except ValueError:
            return _fail("not exactly one of a, b, c, d")
    stripped = text.strip()
    cleaned = _clean(stripped)
    options = list(options) if options is not None else []
    if m := _LETTER_ONLY_RE.match(stripped):  # M1
        return Extraction(MCQ_LETTERS.index(m[1].lower()))
    if m := _LEADING_MARKER_RE.match(stripped):  # M2
        letter = MCQ_LETTERS.index((m[1] or m[2]).lower())
        rest = _clean(m[3])
        more = {(n[1] or n[2]).lower() for n in _MARKER_RE.finditer(m[3])} - {MCQ_LETTERS[letter]}
        if more:
            letters = ", ".join(sorted({MCQ_LETTERS[letter], *more}))
            return _fail(f"several option letters ({letters})")
        others = [i for i, o in enumerate(options) if _clean(o) == rest and i != letter]
        if others and _clean(options[letter]) != rest:
            return _fail(f"letter {MCQ_LETTERS[letter]} but the text of option "
                         f"{MCQ_LETTERS[others[0]]}")  # fmt: skip
        return Extraction(letter)
    letters = {m[1].lower() for m in _ANSWER_LETTER_RE.finditer(stripped)}  # M3
    if len(letters) == 1:
        return Extraction(MCQ_LETTERS.index(letters.pop()))
    if len(letters) > 1:
        return _fail(f"several answer letters ({', '.join(sorted(letters))})")
    markers = {(m[1] or m[2]).lower() for m in _MARKER_RE.finditer(stripped)}  # M4
    if len(markers) == 1:
        return Extraction(MCQ_LETTERS.index(markers.pop()))
    if len(markers) > 1:
        return _fail(f"several option letters ({', '.join(sorted(markers))})")
    if options:  # M5
        exact = [i for i, o in enumerate(options) if _clean(o) == cleaned]
        if len(exact) == 1:
            return Extraction(exact[0])
        named = _named_options(cleaned, options)
        if len(named) == 1:
            return Extraction(named.pop())
        if len(named) > 1:
            return _fail("names several options")
    return _fail("no option letter or option text")


# --- boxes -----------------------------------------------------------------------------------


def extract_box(text: str | None, box_scale: str = "unit", strict: bool = False) -> Extraction:
    """``(x1, y1, x2, y2)`` normalised to [0, 1] from a box written on ``box_scale``'s grid
    (rules X1–X3; ``strict``: exactly ``[x1 y1, x2 y2]``, no surrounding text)."""
    check_scale(box_scale)
    if text is None:
        return _fail("no prediction")
    if strict:
        m = _STRICT_BOX_RE.match(text)
        if m is None:
            return _fail("not exactly '[x1 y1, x2 y2]'")
        candidates = [tuple(float(v) for v in m.groups())]
    else:
        tags = _BOX_TAG_RE.findall(text)  # X1
        body = " ".join(tags) if tags else text
        candidates = [
            tuple(float(v) for v in m.groups())
            for pattern in (_BRACKET_BOX_RE, _PAIR_BOX_RE)
            for m in pattern.finditer(body)
        ]  # X2
        if not candidates and tags:
            for tag in tags:
                numbers = _NUMBER_RE.findall(tag)
                if len(numbers) == 4:
                    candidates.append(tuple(float(v) for v in numbers))
        candidates = list(dict.fromkeys(candidates))
        if not candidates:
            return _fail("no box")
        if len(candidates) > 1:
            return _fail(f"{len(candidates)} different boxes")
    box = to_unit(candidates[0], box_scale)  # X3
    if not all(-_TOLERANCE <= v <= 1 + _TOLERANCE for v in box):
        return _fail(f"out of range for the {box_scale!r} scale")
    box = tuple(min(max(v, 0.0), 1.0) for v in box)
    if box[2] < box[0] or box[3] < box[1]:
        return _fail("corners out of order (x2 < x1 or y2 < y1)")
    return Extraction(box)
