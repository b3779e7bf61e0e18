"""Official-compatible tensors: our collate against a re-implementation of the official reader.

The official BigEarthNet.txt loader (``ben_txt_datamodule.py``) reads every band of a patch from
its LMDB (the GeoTIFF values: S2 uint16, S1 float32), stacks them in the preset's order with
``BENImageReader.stack_and_interpolate`` and normalises with torchvision's ``Normalize`` and its
published ``means``/``stds``. ``official_support`` re-implements those steps on the real sample
GeoTIFFs.
"""

from __future__ import annotations

import pytest
import torch
from collate_support import build_converted_sample
from imagery_support import S2_SAMPLES, V1_S1_SAMPLES
from official_support import (
    MODES,
    OFFICIAL_PRESETS,
    lmdb_bands,
    official_normalize,
    official_stack_and_interpolate,
    official_text_input,
)

from bigearthnet_txt.collate import Collator
from bigearthnet_txt.schema import BAND_PRESETS, OFFICIAL_BAND_PRESETS, S1_BANDS
from bigearthnet_txt.store import ImageryStore
from bigearthnet_txt.tag_tokens import replace_tags


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ImageryStore(build_converted_sample(tmp_path_factory.mktemp("official")))


def examples_of(store: ImageryStore, patch_ids) -> list[dict]:
    indices = store.indices_of(list(patch_ids))
    return [{"patch_index": int(i), "ID": k} for k, i in enumerate(indices)]


def test_official_preset_names_have_the_official_channel_order():
    assert {k: list(v) for k, v in OFFICIAL_BAND_PRESETS.items()} == OFFICIAL_PRESETS
    for name, bands in OFFICIAL_PRESETS.items():
        assert list(BAND_PRESETS[name]) == bands
    # our own 10 m-first order lives under its own names only
    assert BAND_PRESETS["S2-10m-first"][:4] == ("B02", "B03", "B04", "B08")
    assert sorted(BAND_PRESETS["S1S2-10m-first"]) == sorted(OFFICIAL_PRESETS["S1S2-10m20m"])


@pytest.mark.parametrize("preset", list(OFFICIAL_PRESETS))
@pytest.mark.parametrize("mode", MODES)
def test_collate_equals_official_stack_and_interpolate(store, preset, mode):
    bands = OFFICIAL_PRESETS[preset]
    uses_s1 = any(b in S1_BANDS for b in bands)
    patch_ids = list(V1_S1_SAMPLES) if uses_s1 else list(S2_SAMPLES)
    examples = examples_of(store, patch_ids)
    raw = Collator(store, bands=preset, resample=mode, normalize=False, tokenizer=None)(examples)
    normed = Collator(store, bands=preset, resample=mode, stats="official", tokenizer=None)(
        examples
    )
    assert set(raw) >= {"image", "has_s1"} and not {"s2", "s1"} & set(raw)
    assert raw["image"].shape == (len(patch_ids), len(bands), 120, 120)
    want = torch.stack([official_stack_and_interpolate(lmdb_bands(p), bands, 120, mode)
                        for p in patch_ids])  # fmt: skip
    want_normed = torch.stack([official_normalize(w, bands) for w in want])
    if mode == "nearest":
        assert torch.equal(raw["image"], want)
        assert torch.equal(normed["image"], want_normed)
    else:
        torch.testing.assert_close(raw["image"], want, rtol=1e-6, atol=0)
        torch.testing.assert_close(normed["image"], want_normed, rtol=0, atol=1e-5)


def test_official_stats_differ_from_the_store_statistics(store):
    """``stats="official"`` really uses the published table, not the conversion's statistics."""
    examples = examples_of(store, list(S2_SAMPLES)[:2])
    official = Collator(store, bands="RGB", stats="official", tokenizer=None)(examples)["image"]
    ours = Collator(store, bands="RGB", tokenizer=None)(examples)["image"]
    assert not torch.allclose(official, ours)
    with pytest.raises(ValueError):
        Collator(store, stats="imagenet")


def test_split_layout_keeps_s2_and_s1_apart(store):
    examples = examples_of(store, list(V1_S1_SAMPLES))
    split = Collator(store, bands="S1S2-10m20m", stacked=False, tokenizer=None)(examples)
    stacked = Collator(store, bands="S1S2-10m20m", tokenizer=None)(examples)
    assert torch.equal(split["s1"], stacked["image"][:, :2])
    assert torch.equal(split["s2"], stacked["image"][:, 2:])
    first = Collator(store, bands="S1S2-10m-first", tokenizer=None)(examples)["image"]
    order = BAND_PRESETS["S1S2-10m-first"]
    for c, band in enumerate(order):
        assert torch.equal(
            first[:, c], stacked["image"][:, OFFICIAL_PRESETS["S1S2-10m20m"].index(band)]
        )


@pytest.mark.parametrize(
    "point_token, ref_token",
    [(None, None), (["<p>", "</p>"], None), (None, ["[", "]"]), (["(", ")"], ["<|r|>", "<|/r|>"])],
)
def test_point_and_ref_tokens_replace_tags_as_the_official_dataset(store, point_token, ref_token):
    texts = [
        "Identify the <ref>largest region of pastures</ref>.",
        "What is at <point>[0.25, 0.5]</point>? a) Pastures b) Arable land",
        "Is there any arable land in the image?",
    ]
    for text in texts:
        assert replace_tags(text, point_token, ref_token) == official_text_input(
            text, point_token, ref_token
        )
    examples = [{**ex, "input": t, "output": "x"} for ex, t in
                zip(examples_of(store, list(S2_SAMPLES)[:3]), texts, strict=True)]  # fmt: skip
    collator = Collator(
        store, bands="RGB", tokenizer=None, keep_text=True, point_token=point_token or ("", ""),
        ref_token=ref_token or ("", ""),
    )  # fmt: skip
    assert collator(examples)["prompt"] == [official_text_input(t, point_token, ref_token)
                                            for t in texts]  # fmt: skip
