"""Offline tiktoken, tag tokens, replacements, callable tokenizers and padding."""

from __future__ import annotations

import os
import pickle

import pytest
import tiktoken.load
import tiktoken.registry
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiktoken_ext import openai_public

from bigearthnet_txt.tokenize import (
    BPE_FILES,
    TAG_TOKENS,
    TextTokenizer,
    get_encoding,
    pad_sequences,
    shipped_bpe,
)

PROMPT = "Provide a bounding box for the land cover class instance at <point>(0.82, 0.28)</point>"
REF_PROMPT = "Identify the location of the <ref>largest connected region of pastures</ref>."
PLAIN = TextTokenizer()
TAGGED = TextTokenizer(special_tokens=TAG_TOKENS)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty tiktoken cache, no encodings already built in this process and no network: any
    download attempt fails the test."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})

    def no_network(url):
        raise AssertionError(f"tiktoken tried to download {url}")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    return tmp_path / "tiktoken"


@pytest.mark.parametrize("name", sorted(BPE_FILES))
def test_get_encoding_offline_writes_no_cache_and_keeps_the_environment(offline, name):
    get_encoding.cache_clear()
    environment = dict(os.environ)
    encoding = get_encoding(name)
    assert (
        encoding.decode(encoding.encode("pastures and arable land")) == "pastures and arable land"
    )
    assert dict(os.environ) == environment
    assert not offline.exists()


@pytest.mark.parametrize("name", sorted(BPE_FILES))
def test_offline_encoding_equals_tiktokens_own(monkeypatch, name):
    """tiktoken's constructor, fed the same shipped file in place of its download: same split
    pattern, special tokens, ranks and ids."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    monkeypatch.setattr(tiktoken.load, "read_file", lambda url: shipped_bpe(name))
    reference = tiktoken.Encoding(**getattr(openai_public, name)())
    ours = get_encoding(name)
    assert ours._pat_str == reference._pat_str
    assert ours._special_tokens == reference._special_tokens
    assert ours._mergeable_ranks == reference._mergeable_ranks
    text = "Identify the pastures <|endoftext|> 12345 Ärger\n\n  naïve"
    assert ours.encode(text, allowed_special="all") == reference.encode(text, allowed_special="all")


def test_cl100k_ids_are_the_standard_ones(offline):
    assert get_encoding().encode("hello world") == [15339, 1917]


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=80))
def test_round_trip(text):
    assert PLAIN.decode(PLAIN.encode(text)) == text


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(list("ab <>/refpoint()0.,") + list(TAG_TOKENS)), max_size=30).map(
        "".join
    )
)
def test_round_trip_with_tag_tokens(text):
    assert TAGGED.decode(TAGGED.encode(text)) == text


def test_tag_tokens_become_single_new_ids(offline):
    base = TextTokenizer()
    tok = TextTokenizer(special_tokens=TAG_TOKENS)
    ids = [tok.special_token_id(t) for t in TAG_TOKENS]
    assert len(set(ids)) == 4 and min(ids) > base.encoding.max_token_value
    encoded = tok.encode(REF_PROMPT)
    assert encoded.count(tok.special_token_id("<ref>")) == 1
    assert encoded.count(tok.special_token_id("</ref>")) == 1
    assert tok.special_token_id("<ref>") not in base.encode(REF_PROMPT)
    assert len(base.encode("<point>")) > 1
    point_ids = tok.encode(PROMPT)
    assert point_ids[-1] == tok.special_token_id("</point>")
    assert tok.decode(point_ids) == PROMPT
    assert tok.eos_id == base.eos_id == 100257


def test_endoftext_in_data_is_plain_text(offline):
    tok = TextTokenizer(special_tokens=TAG_TOKENS)
    assert tok.eos_id not in tok.encode("a <|endoftext|> b")


def test_replacements_swap_tags_for_model_strings(offline):
    tok = TextTokenizer(
        replacements={"<ref>": "<|object_ref_start|>", "</ref>": "<|object_ref_end|>"}
    )
    decoded = tok.decode(tok.encode(REF_PROMPT))
    assert decoded == REF_PROMPT.replace("<ref>", "<|object_ref_start|>").replace(
        "</ref>", "<|object_ref_end|>"
    )


def utf8_bytes(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def utf8_text(ids) -> str:
    return bytes(ids).decode("utf-8")


def test_callable_tokenizer_and_pickling(offline):
    tok = TextTokenizer(utf8_bytes, decoder=utf8_text, eos_id=256)
    assert tok.encode("ab") == [97, 98] and tok.decode([97, 98]) == "ab" and tok.eos_id == 256
    assert pickle.loads(pickle.dumps(tok)).encode("é") == [195, 169]
    with pytest.raises(ValueError):
        TextTokenizer(utf8_bytes, special_tokens=TAG_TOKENS)
    tiktoken_tok = TextTokenizer(special_tokens=TAG_TOKENS)
    tiktoken_tok.encode("warm")
    clone = pickle.loads(pickle.dumps(tiktoken_tok))
    assert clone._encoding is None and clone.encode(REF_PROMPT) == tiktoken_tok.encode(REF_PROMPT)


def test_pad_sequences_sides_and_truncation():
    right = pad_sequences([[1, 2, 3], [4]], pad_id=9)
    assert right["input_ids"].tolist() == [[1, 2, 3], [4, 9, 9]]
    assert right["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert right["input_ids"].dtype == right["attention_mask"].dtype == torch.int64
    left = pad_sequences([[1, 2, 3], [4]], side="left", max_length=2, truncate="left")
    assert left["input_ids"].tolist() == [[2, 3], [0, 4]]
    assert left["attention_mask"].tolist() == [[1, 1], [0, 1]]
    cut = pad_sequences([[1, 2, 3]], max_length=2)
    assert cut["input_ids"].tolist() == [[1, 2]]
    empty = pad_sequences([[], []])
    assert empty["input_ids"].shape == (2, 0)
