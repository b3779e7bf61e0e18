"""Parsers and renderers of the answer formats: round trips on every variant and clear errors."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bigearthnet_txt.annotations import (
    answer_index,
    answer_letter,
    parse_binary,
    parse_box,
    parse_mcq,
    parse_point,
    parse_ref,
    render_binary,
    render_box,
    render_mcq,
    render_point,
    render_ref,
)

MCQ_VARIANTS = [
    # options containing commas, the SPEC's own example
    "Which classes share a boundary? a) Broad-leaved forest and Pastures, b) Coastal wetlands and "
    "Coniferous forest, c) Coniferous forest and Mixed forest, d) Arable land and Pastures",
    "Which class covers the largest area? a) Industrial or commercial units, b) Beaches, dunes, "
    "sands, c) Land principally occupied by agriculture, with significant areas of natural "
    "vegetation, d) Pastures",
    "How many separate regions of arable land are there? a) 7, b) 4, c) 2, d) 1",
    "In which season was this image taken? a) Spring, b) Summer, c) Fall, d) Winter",
    "What is the climate zone of this region? a) Cold, no dry season, warm summer, b) Temperate, "
    "no dry season, warm summer, c) Polar, tundra, d) Arid, steppe, cold",
]


@pytest.mark.parametrize("text", MCQ_VARIANTS)
def test_mcq_round_trip(text):
    question, options = parse_mcq(text)
    assert len(options) == 4
    assert render_mcq(question, options) == text


def test_mcq_splits_on_letter_markers_not_commas():
    question, options = parse_mcq(MCQ_VARIANTS[1])
    assert question == "Which class covers the largest area?"
    assert options[1] == "Beaches, dunes, sands"
    assert (
        options[2]
        == "Land principally occupied by agriculture, with significant areas of natural vegetation"
    )


@given(
    st.text(st.characters(blacklist_characters="\x00"), max_size=40).filter(
        lambda q: not q.endswith(" ") and "a) " not in q
    ),
    st.lists(
        st.text(alphabet="abcdefgh ,-'", min_size=1, max_size=30).filter(
            lambda o: ", b) " not in o and ", c) " not in o and ", d) " not in o
        ),
        min_size=4,
        max_size=4,
    ),
)
def test_mcq_round_trip_property(question, options):
    text = render_mcq(question, options)
    assert parse_mcq(text) == (question, options)
    assert render_mcq(*parse_mcq(text)) == text


@pytest.mark.parametrize(
    "bad",
    ["Is there water? yes", "Q? a) x, b) y, c) z", "Q? a) x b) y c) z d) w", "", None],
)
def test_mcq_malformed_quotes_text(bad):
    with pytest.raises(ValueError) as err:
        parse_mcq(bad)
    assert repr(bad) in str(err.value)


def test_answer_index_letters():
    assert [answer_index(c) for c in "abcd"] == [0, 1, 2, 3]
    assert [answer_letter(i) for i in range(4)] == list("abcd")
    for bad in ("e", "A", "", "ab"):
        with pytest.raises(ValueError, match=repr(bad)):
            answer_index(bad)


def test_binary():
    assert parse_binary("yes") is True and parse_binary("no") is False
    assert render_binary(parse_binary("yes")) == "yes"
    for bad in ("Yes", "NO", "maybe", ""):
        with pytest.raises(ValueError, match=repr(bad)):
            parse_binary(bad)


BOX_VARIANTS = ["[0.64 0.0, 1.0 0.71]", "[0.0 0.33, 0.28 0.8]", "[0.0 0.0, 1.0 1.0]",
                "[0.55 0.58, 1.0 1.0]", "[0.01 0.09, 0.1 0.99]", "[0.5 0.5, 0.5 0.5]"]  # fmt: skip


@pytest.mark.parametrize("text", BOX_VARIANTS)
def test_box_round_trip(text):
    box = parse_box(text)
    assert render_box(box) == text
    # The float32 values conversion stores render back to the same string.
    assert render_box(list(np.asarray(box, np.float32))) == text


def test_box_values():
    assert parse_box("[0.64 0.0, 1.0 0.71]") == (0.64, 0.0, 1.0, 0.71)


@given(st.lists(st.integers(0, 100), min_size=4, max_size=4))
def test_box_round_trip_on_the_release_grid(v):
    x1, x2 = sorted(v[:2])
    y1, y2 = sorted(v[2:])
    text = f"[{x1 / 100!r} {y1 / 100!r}, {x2 / 100!r} {y2 / 100!r}]"
    assert render_box(parse_box(text)) == text
    assert render_box(list(np.asarray(parse_box(text), np.float32))) == text


@pytest.mark.parametrize(
    "bad",
    ["[0.64 0.0 1.0 0.71]", "(0.1 0.2, 0.3 0.4)", "[0.64, 0.0, 1.0, 0.71]", "[0.5 0.2, 0.4 0.3]",
     "[0.1 0.2, 1.3 0.4]", "[a b, c d]", ""],
)  # fmt: skip
def test_box_malformed_quotes_text(bad):
    with pytest.raises(ValueError) as err:
        parse_box(bad)
    assert repr(bad) in str(err.value)


def test_point_and_ref():
    prompt = (
        "Provide a bounding box for the land cover class instance at <point>(0.82, 0.28)</point>"
    )
    assert parse_point(prompt) == (0.82, 0.28)
    assert render_point(parse_point(prompt)) in prompt
    ref = "Identify the location of the <ref>largest connected region of pastures</ref>."
    assert parse_ref(ref) == "largest connected region of pastures"
    assert render_ref(parse_ref(ref)) in ref
    for bad in ("no tag here", "<point>(0.8 0.2)</point>", "<point>(1.5, 0.2)</point>"):
        with pytest.raises(ValueError, match="no '<point>|in \\[0, 1\\]"):
            parse_point(bad)
    with pytest.raises(ValueError, match="'no ref'"):
        parse_ref("no ref")


def test_every_fixture_row_round_trips(sample_release_table):
    """Every MCQ input and box output of the sample fixtures renders back unchanged."""
    t = sample_release_table
    mcq = t.filter(pc.equal(t["type"], "mcq"))["input"].to_pylist()
    boxes = t.filter(pc.equal(t["type"], "bounding box"))["output"].to_pylist()
    assert mcq and boxes
    assert all(render_mcq(*parse_mcq(s)) == s for s in mcq)
    assert all(render_box(parse_box(s)) == s for s in boxes)
