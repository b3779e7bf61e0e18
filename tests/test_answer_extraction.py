"""Free-form answer extraction: a table of model outputs and what the documented rules make of
them; ``strict`` equals the release parsers the evaluator used before."""

from __future__ import annotations

import pytest

from bigearthnet_txt.annotations import answer_index, parse_binary, parse_box
from bigearthnet_txt.answer_extraction import extract_binary, extract_box, extract_choice
from bigearthnet_txt.box_scales import render_box_scaled, render_point_scaled, rescale_texts

OPTIONS = ["Broad-leaved forest", "Pastures", "Coniferous forest", "Mixed forest"]
UNPARSEABLE = None

# (output, expected value; None = unparseable) — rule in the comment.
BINARY = [
    ("yes", True),  # B2
    ("no", False),  # B2
    ("Yes", True),  # B2, case
    (" Yes.", True),  # B2
    ("Yes, there is.", True),  # B2: first word
    ("No, there is no forest.", False),  # B2: the same word repeated
    ("Yes, there is no water next to it.", True),  # B2: 'no' not beside 'yes'
    ("The answer is no.", False),  # B2
    ("no, yes", UNPARSEABLE),  # trap: side by side
    ("Yes or no", UNPARSEABLE),  # trap: side by side
    ("yes/no", UNPARSEABLE),  # trap
    ("maybe", UNPARSEABLE),  # B1: no word
    ("nope", UNPARSEABLE),  # B1: 'no' only as a whole word
    ("", UNPARSEABLE),  # B1
]
MCQ = [
    ("b", 1),  # M1
    ("B", 1),  # M1
    ("b)", 1),  # M1
    ("(b)", 1),  # M1
    ("B.", 1),  # M1
    (" c \n", 2),  # M1
    ("B. Pastures", 1),  # M2
    ("b) Pastures", 1),  # M2
    ("(d) Mixed forest.", 3),  # M2
    ("B. Mixed forest", UNPARSEABLE),  # M2 trap: letter and another option's text
    ("b) or c)", UNPARSEABLE),  # M2 trap: two letters
    ("Answer: b", 1),  # M3
    ("The answer is b", 1),  # M3
    ("The answer is (c).", 2),  # M3
    ("I choose option d", 3),  # M3
    ("The answer is a.", 0),  # M3
    ("The answer is a mixed forest", 3),  # M3 reads 'a' + word as the article, then M5
    ("Answer: a. Answer: c", UNPARSEABLE),  # M3 trap: two letters
    ("I think c) is right", 2),  # M4
    ("Either (a) or (b)", UNPARSEABLE),  # M4 trap: two letters
    ("Pastures", 1),  # M5: exact option text
    ("pastures.", 1),  # M5
    ("It is mostly Coniferous forest here", 2),  # M5: one option named
    ("Coniferous forest and Pastures", UNPARSEABLE),  # M5 trap: two options named
    ("forest", UNPARSEABLE),  # M5: no option text matches
    ("a or b", UNPARSEABLE),  # trap: bare letters outside M1
    ("e", UNPARSEABLE),  # no such letter
]
# (output, box_scale, expected box)
BOXES = [
    ("[0.1 0.2, 0.3 0.4]", "unit", (0.1, 0.2, 0.3, 0.4)),  # X2 release form
    (" [0.1 0.2, 0.3 0.4]\n", "unit", (0.1, 0.2, 0.3, 0.4)),  # X2
    ("[0.1, 0.2, 0.3, 0.4]", "unit", (0.1, 0.2, 0.3, 0.4)),  # X2 commas
    ("The box is [0.1, 0.2, 0.3, 0.4].", "unit", (0.1, 0.2, 0.3, 0.4)),  # X2 in text
    ("(0.1,0.2),(0.3,0.4)", "unit", (0.1, 0.2, 0.3, 0.4)),  # X2 corner pairs
    ("<box>(100,200),(300,400)</box>", "1000", (0.1, 0.2, 0.3, 0.4)),  # X1 + X2, 0-1000
    ("<box>[100 200, 300 400]</box>", "1000", (0.1, 0.2, 0.3, 0.4)),  # X1
    ("<box>100 200 300 400</box>", "1000", (0.1, 0.2, 0.3, 0.4)),  # X2 four numbers in a tag
    ("[12 24, 60 96]", "pixels", (0.1, 0.2, 0.5, 0.8)),  # X3 pixels on the 120 grid
    ("[0 0, 120 120]", "pixels", (0.0, 0.0, 1.0, 1.0)),  # X3
    ("[0.5 0.2, 0.3 0.4]", "unit", UNPARSEABLE),  # trap: x2 < x1
    ("[0.1 0.4, 0.3 0.2]", "unit", UNPARSEABLE),  # trap: y2 < y1
    ("[100 200, 300 400]", "unit", UNPARSEABLE),  # trap: 0-1000 box read as unit
    ("[12 24, 160 96]", "pixels", UNPARSEABLE),  # trap: beyond 120 pixels
    ("[0.1 0.2, 0.3 0.4]", "1000", (0.0001, 0.0002, 0.0003, 0.0004)),  # trap: wrong scale, tiny
    ("[0.1 0.2, 0.3 0.4] or [0.2 0.2, 0.3 0.4]", "unit", UNPARSEABLE),  # trap: two boxes
    ("[0.1 0.2, 0.3]", "unit", UNPARSEABLE),  # no box
    ("somewhere top left", "unit", UNPARSEABLE),  # no box
]


def test_the_table_is_large_enough():
    assert len(BINARY) + len(MCQ) + len(BOXES) >= 40


@pytest.mark.parametrize("text, expected", BINARY)
def test_binary(text, expected):
    result = extract_binary(text)
    assert result.value == expected
    assert bool(result.reason) == (expected is None)


@pytest.mark.parametrize("text, expected", MCQ)
def test_mcq(text, expected):
    result = extract_choice(text, OPTIONS)
    assert result.value == expected
    assert bool(result.reason) == (expected is None)


@pytest.mark.parametrize("text, scale, expected", BOXES)
def test_boxes(text, scale, expected):
    result = extract_box(text, box_scale=scale)
    if expected is None:
        assert result.value is None and result.reason
    else:
        assert result.value == pytest.approx(expected, abs=1e-12)


def test_reasons_name_the_problem():
    assert extract_binary("no, yes").reason == "yes and no side by side"
    assert "several" in extract_choice("b) or c)", OPTIONS).reason
    assert "out of range" in extract_box("[100 200, 300 400]").reason
    assert "out of order" in extract_box("[0.5 0.2, 0.3 0.4]").reason
    assert extract_box(None).reason == "no prediction"


def _release(parser, text):
    try:
        return parser(text)
    except ValueError:
        return None


ALL_TEXTS = [t for t, _ in BINARY] + [t for t, _ in MCQ] + [t for t, _, _ in BOXES]


@pytest.mark.parametrize("text", ALL_TEXTS + ["yes", "a", "d", "[0.0 0.0, 1.0 1.0]"])
def test_strict_is_the_release_parsers(text):
    assert extract_binary(text, strict=True).value == _release(parse_binary, text)
    assert extract_choice(text, OPTIONS, strict=True).value == _release(answer_index, text)
    assert extract_box(text, strict=True).value == _release(parse_box, text)


@pytest.mark.parametrize("scale", ["unit", "1000", "pixels"])
def test_rendered_boxes_read_back_on_their_scale(scale):
    for box in [(0.64, 0.0, 1.0, 0.71), (0.0, 0.0, 0.01, 0.99), (0.33, 0.25, 0.5, 0.75)]:
        text = render_box_scaled(box, scale)
        assert extract_box(text, box_scale=scale).value == pytest.approx(box, abs=1e-12)
        assert extract_box(text, box_scale=scale, strict=True).value == pytest.approx(box)
    prompt, target = rescale_texts(
        "What is at <point>(0.82, 0.28)</point>?", "[0.64 0.0, 1.0 0.71]", scale
    )
    assert render_point_scaled((0.82, 0.28), scale) in prompt
    assert target == render_box_scaled((0.64, 0.0, 1.0, 0.71), scale)


def test_box_scale_renderings():
    assert render_box_scaled((0.64, 0.0, 1.0, 0.71), "1000") == "[640 0, 1000 710]"
    assert render_box_scaled((0.64, 0.0, 1.0, 0.71), "pixels") == "[76.8 0, 120 85.2]"
    assert render_point_scaled((0.82, 0.28), "1000") == "<point>(820, 280)</point>"
    with pytest.raises(ValueError, match="box_scale"):
        extract_box("[0 0, 1 1]", box_scale="percent")
