"""BLEU redundancy weights against a loop over ``sacrebleu.sentence_bleu`` (SPEC §4)."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest
import sacrebleu
from hypothesis import given, settings
from hypothesis import strategies as st

from bigearthnet_txt import redundancy
from bigearthnet_txt.redundancy import uniqueness, uniqueness_batch, weights, weights_batch

WORDS = (
    "a",
    "the",
    "land",
    "Arable",
    "forest",
    "pastures",
    "yes",
    "no",
    "?",
    ".",
    ",",
    "-",
    "a)",
    "b)",
    "d",
    "0.64",
    "1.0",
    "[0.64",
    "0.0,",
    "0.71]",
    "3-4",
    "x-y",
    "land.",
    "end,",
    "1.5.",
    "<ref>largest",
    "region</ref>.",
    "&amp;",
    "&quot;ok&quot;",
    "<skipped>",
    "e.g.,",
    "(a)",
    "Üsküdar",
    "forêt",
    "森林",
    "naïve…",
    "—",
    "50%",
    "$5",
    "a/b",
    "-\n",
    "\t",
    "tab\tbed",
)


def reference_uniqueness(texts: list[str], groups: list) -> np.ndarray:
    """``1 - sentence_bleu(t_i, other texts of the group) / 100``, one sacrebleu call per text."""
    members: dict = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    out = np.ones(len(texts))
    for rows in members.values():
        if len(rows) == 1:
            continue
        for i in rows:
            refs = [texts[j] for j in rows if j != i]
            out[i] = 1.0 - sacrebleu.sentence_bleu(texts[i], refs).score / 100.0
    return out


def random_text(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.05:
        return ""
    if kind < 0.15:
        return rng.choice(WORDS)
    sep = " " if rng.random() < 0.9 else rng.choice(("  ", " \n", "\t "))
    return sep.join(rng.choice(WORDS) for _ in range(rng.randint(1, 16))) + rng.choice(
        ("", " ", "\n")
    )


def random_groups(seed: int, num_groups: int) -> tuple[list[str], list]:
    """Texts of ``num_groups`` groups (1 to 67 texts, with copies), shuffled, non-contiguous ids.

    One group in 40 has 40 to 67 texts, the others 1 to 8 (sacrebleu's loop is quadratic in the
    group size).
    """
    rng = random.Random(seed)
    texts, groups = [], []
    for g in range(num_groups):
        size = rng.randint(1, 8) if g % 40 else (67 if g == 0 else rng.randint(40, 67))
        pool = [random_text(rng) for _ in range(max(1, size // rng.choice((1, 2, 4))))]
        for _ in range(size):
            texts.append(rng.choice(pool))
            groups.append(f"patch-{g * 7919 % 100003}")
    order = list(range(len(texts)))
    rng.shuffle(order)
    return [texts[i] for i in order], [groups[i] for i in order]


def test_matches_sentence_bleu_on_2000_groups():
    texts, groups = random_groups(seed=1, num_groups=2000)
    assert len(set(groups)) == 2000
    got = uniqueness_batch(texts, groups)
    assert got.dtype == np.float64 and got.shape == (len(texts),)
    np.testing.assert_allclose(got, reference_uniqueness(texts, groups), rtol=0, atol=1e-6)


def test_small_chunks_give_the_same_numbers(monkeypatch):
    texts, groups = random_groups(seed=2, num_groups=300)
    whole = uniqueness_batch(texts, groups)
    monkeypatch.setattr(redundancy, "_CHUNK_ROWS", 7)
    np.testing.assert_array_equal(uniqueness_batch(texts, groups), whole)


def test_chunks_split_when_keys_need_more_bits(monkeypatch):
    rng = random.Random(8)
    texts = [" ".join(rng.choice(("a", "b", "c")) for _ in range(3)) for _ in range(120)]
    groups = [i // 4 for i in range(120)]
    whole = uniqueness_batch(texts, groups)
    monkeypatch.setattr(redundancy, "_KEY_BITS", 12)
    np.testing.assert_array_equal(uniqueness_batch(texts, groups), whole)
    np.testing.assert_allclose(whole, reference_uniqueness(texts, groups), atol=1e-6)
    monkeypatch.setattr(redundancy, "_KEY_BITS", 4)
    with pytest.raises(ValueError, match="too large"):
        uniqueness_batch(texts, groups)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.sampled_from([*"ab1.,-\n \t&;<>()[]?é森\xa0", "&amp;", "<skipped>", "-\n"]),
            max_size=20,
        ).map("".join),
        min_size=2,
        max_size=8,
    )
)
def test_arbitrary_characters(texts):
    got = uniqueness(texts)
    np.testing.assert_allclose(
        got, reference_uniqueness(texts, [0] * len(texts)), rtol=0, atol=1e-6
    )


def test_identical_texts_are_fully_redundant():
    texts = ["Is there any arable land in the image? yes"] * 5
    np.testing.assert_allclose(uniqueness(texts), 0.0, atol=1e-12)
    np.testing.assert_allclose(weights(texts), 0.2)


def test_texts_without_overlap_are_fully_unique():
    u = uniqueness(["alpha beta gamma", "delta epsilon", "zeta"])
    np.testing.assert_array_equal(u, 1.0)


def test_single_text_and_empty_input():
    np.testing.assert_array_equal(uniqueness(["only one"]), [1.0])
    np.testing.assert_array_equal(weights(["only one"]), [1.0])
    np.testing.assert_array_equal(weights(["only one"], temperature=0.1), [1.0])
    assert uniqueness([]).shape == (0,)
    assert weights_batch([], []).shape == (0,)


def test_weights_normalise_within_groups():
    texts, groups = random_groups(seed=3, num_groups=200)
    u = uniqueness_batch(texts, groups)
    w = weights_batch(texts, groups)
    for g in set(groups):
        rows = [i for i, x in enumerate(groups) if x == g]
        if u[rows].sum() > 0:
            np.testing.assert_allclose(w[rows], u[rows] / u[rows].sum())
        else:
            np.testing.assert_allclose(w[rows], 1.0 / len(rows))


@pytest.mark.parametrize("temperature", [0.05, 1.0, 10.0])
def test_temperature_is_a_softmax_within_groups(temperature):
    texts, groups = random_groups(seed=4, num_groups=100)
    u = uniqueness_batch(texts, groups)
    w = weights_batch(texts, groups, temperature=temperature)
    for g in set(groups):
        rows = [i for i, x in enumerate(groups) if x == g]
        e = np.exp(u[rows] / temperature)
        np.testing.assert_allclose(w[rows], e / e.sum(), rtol=1e-12)


def test_bad_temperature():
    with pytest.raises(ValueError):
        weights(["a b", "a c"], temperature=0.0)


def test_group_key_forms_agree():
    texts, groups = random_groups(seed=5, num_groups=150)
    codes = {g: i for i, g in enumerate(sorted(set(groups)))}
    as_int = np.array([codes[g] * 3 + 11 for g in groups])
    as_tuple = [(g, "binary") for g in groups]
    as_2d = np.stack([as_int, as_int % 5], axis=1)
    expected = uniqueness_batch(texts, groups)
    for form in (as_int, as_tuple, np.array(groups, dtype=object), as_2d, as_int.tolist()):
        np.testing.assert_array_equal(uniqueness_batch(texts, form), expected)


def test_text_container_forms_agree():
    texts, groups = random_groups(seed=6, num_groups=50)
    expected = weights_batch(texts, groups)
    for form in (np.array(texts, dtype=object), np.array(texts), pa.array(texts), tuple(texts)):
        np.testing.assert_array_equal(weights_batch(form, groups), expected)


def test_patch_by_type_groups_split_a_patch():
    texts = [
        "Is there any arable land? yes",
        "Is there any arable land? no",
        "There is arable land and some pastures.",
    ]
    by_patch = uniqueness_batch(texts, ["p", "p", "p"])
    by_type = uniqueness_batch(texts, [("p", "binary"), ("p", "binary"), ("p", "captioning")])
    assert by_type[2] == 1.0 and by_patch[2] < 1.0
    np.testing.assert_allclose(by_type[:2], reference_uniqueness(texts[:2], [0, 0]), atol=1e-6)


def test_rejects_non_strings_and_mismatched_lengths():
    with pytest.raises(TypeError):
        uniqueness_batch(["a", None], [0, 0])
    with pytest.raises(TypeError):
        uniqueness_batch(["a", 3], [0, 0])
    with pytest.raises(ValueError):
        uniqueness_batch(["a", "b"], [0])


TOKEN_ALPHABET = [
    *"aZ09.,-&;#<>/:@[]`{}~()+!?%$\"' \t\n\r\x0b\x0c\x1c\x85\xa0\u2003é森",
    "&amp;",
    "&quot;",
    "&lt;",
    "<skipped>",
    "-\n",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(TOKEN_ALPHABET), max_size=30).map("".join), min_size=1, max_size=6
    )
)
def test_word_level_tokens_equal_sacrebleu_13a(texts):
    """The ids of ``_token_ids`` spell exactly sacrebleu's ``13a`` tokens of ``text.rstrip()``."""
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tok = Tokenizer13a()
    codes, ids, offsets = redundancy._token_ids(pa.array(texts, type=pa.large_string()))
    spelling: dict[int, str] = {}
    for text, code in zip(texts, codes, strict=True):
        expected = tok(text.rstrip()).split()
        got = ids[offsets[code] : offsets[code + 1]].tolist()
        assert len(got) == len(expected)
        for i, token in zip(got, expected, strict=True):
            assert spelling.setdefault(i, token) == token
    assert len(set(spelling.values())) == len(spelling)
