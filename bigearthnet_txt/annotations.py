"""Parse and render the answer formats of BigEarthNet.txt (SPEC §1, "Answer formats").

Every parser is the exact inverse of its renderer on the release's strings:

>>> s = ("Which classes share a boundary? a) Broad-leaved forest and Pastures, "
...      "b) Coastal wetlands and Coniferous forest, c) Coniferous forest and Mixed forest, "
...      "d) Arable land and Pastures")
>>> render_mcq(*parse_mcq(s)) == s
True
>>> parse_box("[0.64 0.0, 1.0 0.71]")
(0.64, 0.0, 1.0, 0.71)
>>> render_box((0.64, 0.0, 1.0, 0.71))
'[0.64 0.0, 1.0 0.71]'

Malformed input raises ``ValueError`` quoting the offending text. The regular expressions are
public (``MCQ_PATTERN`` …) so that table-level conversion can apply the same rules vectorised.
Boxes are ``(x1, y1, x2, y2)`` and points ``(x, y)``, normalised to [0, 1], origin at the top-left
of the 120×120 image, y pointing down; pixel = value × 120.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from bigearthnet_txt.schema import BINARY_ANSWERS, MCQ_LETTERS

# RE2-compatible patterns (pyarrow.compute uses RE2), shared with the vectorised converter.
MCQ_PATTERN = (
    r"(?s)^(?:(?P<question>.*?) )?a\) (?P<a>.*), b\) (?P<b>.*), c\) (?P<c>.*), d\) (?P<d>.*)$"
)
_NUMBER = r"[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
BOX_PATTERN = rf"^\[(?P<x1>{_NUMBER}) (?P<y1>{_NUMBER}), (?P<x2>{_NUMBER}) (?P<y2>{_NUMBER})\]$"
POINT_PATTERN = rf"<point>\((?P<x>{_NUMBER}), (?P<y>{_NUMBER})\)</point>"
REF_PATTERN = r"(?s)<ref>(?P<ref>.*?)</ref>"

_MCQ_RE = re.compile(MCQ_PATTERN)
_BOX_RE = re.compile(BOX_PATTERN)
_POINT_RE = re.compile(POINT_PATTERN)
_REF_RE = re.compile(REF_PATTERN)

Box = tuple[float, float, float, float]
Point = tuple[float, float]


def _quote(text: object, limit: int = 200) -> str:
    s = repr(text)
    return s if len(s) <= limit else s[: limit - 3] + "..."


# --- multiple choice -------------------------------------------------------------------------


def parse_mcq(text: str) -> tuple[str, list[str]]:
    """Split an MCQ ``input`` into its question and its four options a–d.

    Options are inline, lettered ``a) … b) … c) … d) …`` and separated by ``", "``; an option
    may itself contain commas, so the split is on the letter markers, not on commas.
    """
    if not isinstance(text, str):
        raise ValueError(f"MCQ input must be a string, got {_quote(text)}")
    m = _MCQ_RE.match(text)
    if m is None:
        raise ValueError(
            f"MCQ input does not hold four options 'a) …, b) …, c) …, d) …': {_quote(text)}"
        )
    return m["question"] or "", [m[letter] for letter in MCQ_LETTERS]


def render_mcq(question: str, options: Sequence[str]) -> str:
    """Inverse of :func:`parse_mcq`: ``"<question> a) o1, b) o2, c) o3, d) o4"``."""
    if len(options) != len(MCQ_LETTERS):
        raise ValueError(f"an MCQ needs exactly 4 options, got {len(options)}: {_quote(options)}")
    body = ", ".join(
        f"{letter}) {option}" for letter, option in zip(MCQ_LETTERS, options, strict=True)
    )
    return f"{question} {body}" if question else body


def answer_index(letter: str) -> int:
    """Index of an MCQ answer letter: ``'a'`` → 0 … ``'d'`` → 3."""
    try:
        return MCQ_LETTERS.index(letter)
    except ValueError:
        raise ValueError(f"MCQ answer must be one of a, b, c, d, got {_quote(letter)}") from None


def answer_letter(index: int) -> str:
    """Inverse of :func:`answer_index`."""
    if not 0 <= int(index) < len(MCQ_LETTERS):
        raise ValueError(f"MCQ answer index must be 0..3, got {_quote(index)}")
    return MCQ_LETTERS[int(index)]


# --- binary ----------------------------------------------------------------------------------


def parse_binary(text: str) -> bool:
    """``'yes'`` → True, ``'no'`` → False (lower case, as in the release)."""
    try:
        return BINARY_ANSWERS[text]
    except (KeyError, TypeError):
        raise ValueError(f"binary answer must be 'yes' or 'no', got {_quote(text)}") from None


def render_binary(value: bool) -> str:
    """Inverse of :func:`parse_binary`."""
    return "yes" if value else "no"


# --- boxes, points and referring expressions -------------------------------------------------


def _check_unit(values: Sequence[float], what: str, text: str) -> None:
    if not all(0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"{what} coordinates must lie in [0, 1]: {_quote(text)}")


def parse_box(text: str) -> Box:
    """Parse ``"[x1 y1, x2 y2]"`` into ``(x1, y1, x2, y2)`` floats with x2 ≥ x1 and y2 ≥ y1."""
    m = _BOX_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"box must look like '[x1 y1, x2 y2]', got {_quote(text)}")
    box = (float(m["x1"]), float(m["y1"]), float(m["x2"]), float(m["y2"]))
    _check_unit(box, "box", text)
    if box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f"box corners out of order (need x2 >= x1 and y2 >= y1): {_quote(text)}")
    return box


def format_coordinate(value: float) -> str:
    """Shortest decimal form, as the release writes coordinates (``0.0``, ``0.64``, ``1.0``).

    float32 values are printed with the shortest digits that round-trip in float32, so a
    coordinate read back from a float32 column renders like the original string.
    """
    if isinstance(value, np.floating) and value.dtype != np.float64:
        return np.format_float_positional(value, unique=True, trim="0")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"coordinate must be finite, got {value!r}")
    return repr(value)


def render_box(box: Sequence[float]) -> str:
    """Inverse of :func:`parse_box`: ``(0.64, 0.0, 1.0, 0.71)`` → ``"[0.64 0.0, 1.0 0.71]"``."""
    if len(box) != 4:
        raise ValueError(f"a box has 4 coordinates, got {_quote(box)}")
    x1, y1, x2, y2 = (format_coordinate(v) for v in box)
    return f"[{x1} {y1}, {x2} {y2}]"


def parse_point(text: str) -> Point:
    """The ``(x, y)`` of the ``<point>(x, y)</point>`` tag in a referring prompt."""
    m = _POINT_RE.search(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"no '<point>(x, y)</point>' tag in {_quote(text)}")
    point = (float(m["x"]), float(m["y"]))
    _check_unit(point, "point", text)
    return point


def render_point(point: Sequence[float]) -> str:
    """Inverse of :func:`parse_point` for the tag itself: ``"<point>(0.82, 0.28)</point>"``."""
    x, y = (format_coordinate(v) for v in point)
    return f"<point>({x}, {y})</point>"


def parse_ref(text: str) -> str:
    """The referring expression inside ``<ref>…</ref>``."""
    m = _REF_RE.search(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"no '<ref>…</ref>' tag in {_quote(text)}")
    return m["ref"]


def render_ref(expression: str) -> str:
    """Inverse of :func:`parse_ref` for the tag itself."""
    return f"<ref>{expression}</ref>"
