"""Collator on the converted embedded sample through real DataLoaders (2 workers)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from collate_support import build_converted_sample
from torch.utils.data import DataLoader

from bigearthnet_txt.annotations import parse_box, parse_point
from bigearthnet_txt.augment import Augmenter, Transform
from bigearthnet_txt.collate import Collator, label_tensors, table_group_key
from bigearthnet_txt.image_tensors import uint16_bits_to_float32
from bigearthnet_txt.loading import load_dataset
from bigearthnet_txt.schema import BAND_PRESETS, S1_BANDS, S2_BANDS
from bigearthnet_txt.store import ImageryStore, s2_to_120
from bigearthnet_txt.tables import read_tables
from bigearthnet_txt.tokenize import TAG_TOKENS, TextTokenizer

TOKENIZER = TextTokenizer(special_tokens=TAG_TOKENS)
ARRAY_BANDS = {"s2_10m": ("B02", "B03", "B04", "B08"),
               "s2_20m": ("B05", "B06", "B07", "B8A", "B11", "B12"),
               "s2_60m": ("B01", "B09"), "s1": S1_BANDS}  # fmt: skip


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return build_converted_sample(tmp_path_factory.mktemp("collate"))


@pytest.fixture(scope="module")
def texts(converted, tmp_path_factory):
    """Every split of every task, text only (imagery comes from the collator's batched read)."""
    ds = load_dataset(converted, "all", imagery=(), cache_dir=str(tmp_path_factory.mktemp("hf")))
    return {split: ds[split] for split in ds}


@pytest.fixture(scope="module")
def store(converted):
    return ImageryStore(converted)


def expected_images(store: ImageryStore, patch_index, bands, mode: str = "nearest") -> np.ndarray:
    """Direct store read → 120×120 (official nearest, or torch interpolate) → (x - mean) / std."""
    batch = store.read(patch_index)
    if mode == "nearest":
        full = dict(zip(S2_BANDS, np.moveaxis(s2_to_120(batch).astype(np.float32), 1, 0),
                        strict=True))  # fmt: skip
    else:
        full = {}
        for name in ("s2_10m", "s2_20m", "s2_60m"):
            x = torch.from_numpy(batch[name].astype(np.float32))
            if x.shape[-1] != 120:
                x = F.interpolate(x, size=(120, 120), mode=mode, align_corners=True)
            full.update(zip(ARRAY_BANDS[name], np.moveaxis(x.numpy(), 1, 0), strict=True))
    full.update(zip(S1_BANDS, np.moveaxis(batch["s1"], 1, 0), strict=True))
    stats = store.stats
    out = np.stack([(full[b] - stats[b]["mean"]) / stats[b]["std"] for b in bands], axis=1)
    return np.nan_to_num(out.astype(np.float32), nan=0.0)


def loader(dataset, collator, batch_size=8):
    return DataLoader(
        dataset, batch_size=batch_size, num_workers=2, collate_fn=collator, shuffle=False
    )


def test_dataloader_with_two_workers_matches_direct_store_read(texts, store):
    collator = Collator(store, bands="S1S2-10m20m", stacked=False, tokenizer=TOKENIZER)
    dataset = texts["validation"]
    seen = []
    for batch in loader(dataset, collator):
        b = batch["ID"].shape[0]
        assert batch["s2"].shape == (b, 10, 120, 120) and batch["s2"].dtype == torch.float32
        assert batch["s1"].shape == (b, 2, 120, 120) and batch["s1"].dtype == torch.float32
        want = expected_images(store, batch["patch_index"].numpy(), BAND_PRESETS["S1S2-10m20m"])
        np.testing.assert_allclose(batch["s1"].numpy(), want[:, :2], rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(batch["s2"].numpy(), want[:, 2:], rtol=1e-6, atol=1e-5)
        has_s1 = store.patches["has_s1"].to_numpy(zero_copy_only=False)
        rows = store.patches["patch_index"].to_numpy()
        want_has_s1 = [has_s1[list(rows).index(p)] for p in batch["patch_index"].tolist()]
        assert batch["has_s1"].tolist() == want_has_s1
        seen += batch["ID"].tolist()
    assert sorted(seen) == sorted(dataset["ID"])


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_smooth_resampling_matches_interpolate(texts, store, mode):
    examples = texts["train"].select(range(12)).to_list()
    batch = Collator(store, bands="all", stacked=False, resample=mode, tokenizer=None)(examples)
    want = expected_images(store, [e["patch_index"] for e in examples], BAND_PRESETS["all"], mode)
    np.testing.assert_allclose(batch["s1"].numpy(), want[:, :2], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(batch["s2"].numpy(), want[:, 2:], rtol=1e-5, atol=1e-4)


def test_band_lists_presets_and_raw_values(texts, store):
    examples = texts["test"].select(range(4)).to_list()
    rgb = Collator(store, bands="RGB", stacked=False, tokenizer=None)(examples)
    assert rgb["s2"].shape == (4, 3, 120, 120) and "s1" not in rgb
    raw = Collator(store, bands=["VH", "B8A"], stacked=False, normalize=False, tokenizer=None)(
        examples
    )
    batch = store.read([e["patch_index"] for e in examples])
    np.testing.assert_array_equal(
        raw["s2"][:, 0].numpy(), batch["s2_20m"][:, 3].repeat(2, 1).repeat(2, 2)
    )
    np.testing.assert_array_equal(
        raw["s1"][:, 0].numpy(), np.nan_to_num(batch["s1"][:, 1], nan=0.0)
    )
    with pytest.raises(KeyError):
        Collator(store, bands=["B10"])
    with pytest.raises(ValueError):
        Collator(store, resample="lanczos")


def test_labels_masks_groups_and_tokens(texts, store):
    examples = [e for split in ("train", "validation") for e in texts[split].to_list()][:64]
    batch = Collator(store, tokenizer=TOKENIZER)(examples)
    for i, ex in enumerate(examples):
        assert batch["answer_index_mask"][i] == (ex["answer_index"] is not None)
        assert batch["answer_index"][i] == (
            -1 if ex["answer_index"] is None else ex["answer_index"]
        )
        assert batch["answer_bool_mask"][i] == (ex["answer_bool"] is not None)
        assert batch["answer_bool"][i] == bool(ex["answer_bool"])
        assert batch["box_mask"][i] == (ex["box"] is not None)
        assert batch["point_mask"][i] == (ex["point"] is not None)
        if ex["box"] is not None:
            assert batch["box"][i].tolist() == pytest.approx(ex["box"])
        if ex["point"] is not None:
            assert batch["point"][i].tolist() == pytest.approx(ex["point"])
        assert batch["redundancy_weight"][i] == pytest.approx(ex["redundancy_weight"])
        assert batch["ID"][i] == ex["ID"] and batch["patch_index"][i] == ex["patch_index"]
        prompt = batch["prompt_input_ids"][i][batch["prompt_attention_mask"][i].bool()]
        target = batch["target_input_ids"][i][batch["target_attention_mask"][i].bool()]
        assert TOKENIZER.decode(prompt.tolist()) == ex["input"]
        assert (
            target[-1] == TOKENIZER.eos_id
            and TOKENIZER.decode(target[:-1].tolist()) == ex["output"]
        )
    assert batch["prompt_attention_mask"][:, -1].all()  # prompts are left-padded
    assert batch["target_attention_mask"][:, 0].all()
    groups = batch["group_index"].tolist()
    patches = batch["patch_index"].tolist()
    assert len(set(groups)) == len(set(patches))
    assert all(
        (groups[i] == groups[j]) == (patches[i] == patches[j]) for i in range(64) for j in range(64)
    )
    assert batch["box"].dtype == torch.float32 and batch["box"].shape == (64, 4)
    assert batch["point"].shape == (64, 2) and batch["answer_index"].dtype == torch.int64


def test_collator_pickles_without_an_open_store(texts, store):
    collator = Collator(store.root, tokenizer=TOKENIZER, augment=Augmenter(seed=3))
    examples = texts["bench"].select(range(5)).to_list()
    first = collator(examples)
    clone = pickle.loads(pickle.dumps(collator))
    assert clone.store._group is None and clone._image_transform is None
    again = clone(examples)
    for key in first:
        assert torch.equal(first[key], again[key]), key


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_device_transform_on_cpu_equals_worker_transform(texts, store, mode):
    examples = texts["validation"].select(range(24)).to_list()
    settings = {"bands": "all", "resample": mode, "tokenizer": None, "augment": Augmenter(seed=2)}
    direct = Collator(store, **settings)(examples)
    deferred = Collator(store, device_transform=True, **settings)
    batch = deferred(examples)
    assert batch["s2_20m"].shape == (24, 6, 60, 60) and batch["s2_60m"].dtype == torch.uint16
    moved = deferred.to_device(batch, "cpu")
    assert "s2_20m" not in moved and len({tuple(t) for t in moved["transform"].tolist()}) > 1
    torch.testing.assert_close(moved["image"], direct["image"], rtol=1e-5, atol=1e-5)
    for key in ("has_s1", "box", "point", "transform"):
        assert torch.equal(moved[key], direct[key]), key
    kept = Collator(store, **settings).to_device(direct, "cpu")
    assert kept.keys() == direct.keys() and all(torch.equal(kept[k], direct[k]) for k in direct)


def test_examples_with_joined_imagery_need_no_store(converted, store, tmp_path):
    """``load_dataset`` with imagery: the DataLoader's batched fetch gives the same batch."""
    dataset = load_dataset(converted, "vqa", split="train", cache_dir=str(tmp_path))
    stats = store.stats
    from_examples = next(iter(loader(dataset, Collator(None, stats=stats, tokenizer=None))))
    ids = from_examples["ID"].tolist()
    text_only = load_dataset(converted, "vqa", split="train", imagery=(), cache_dir=str(tmp_path))
    examples = [text_only[i] for i in range(len(ids))]
    from_store = Collator(store, tokenizer=None)(examples)
    for key in from_store:
        assert torch.equal(from_examples[key], from_store[key]), key


def test_augmented_batches_move_images_boxes_and_texts_together(texts, store):
    dataset = texts["validation"]
    plain = Collator(store, bands="all", tokenizer=None, keep_text=True)
    augmented = Collator(
        store, bands="all", tokenizer=None, keep_text=True, augment=Augmenter(seed=11, key="ID")
    )
    kinds = set()
    for a, p in zip(loader(dataset, augmented, 16), loader(dataset, plain, 16), strict=True):
        for i in range(a["ID"].shape[0]):
            t = Transform(*map(int, a["transform"][i].tolist()))
            kinds.add(t.canonical())
            assert torch.equal(a["image"][i], t.apply_image(p["image"][i]))
            if a["box_mask"][i]:
                assert parse_box(a["target"][i]) == pytest.approx(a["box"][i].tolist(), abs=1e-6)
                want = t.apply_boxes(p["box"][i].numpy().astype(np.float64))
                np.testing.assert_allclose(a["box"][i].numpy(), want, atol=1e-6)
            if a["point_mask"][i]:
                assert parse_point(a["prompt"][i]) == pytest.approx(
                    a["point"][i].tolist(), abs=1e-6
                )
    assert len(kinds) > 3
    again = next(iter(loader(dataset, augmented, 16)))
    first = next(iter(loader(dataset, augmented, 16)))
    assert torch.equal(again["image"], first["image"]) and torch.equal(
        again["transform"], first["transform"]
    )
    augmented.set_epoch(1)
    assert not torch.equal(
        next(iter(loader(dataset, augmented, 16)))["transform"], first["transform"]
    )


def test_rows_of_one_patch_share_one_transform_per_batch(texts, store):
    collator = Collator(store, bands="RGB", tokenizer=None, augment=Augmenter(seed=5))
    shared = 0
    for batch in loader(texts["train"], collator, 64):
        groups, transforms = batch["group_index"].tolist(), batch["transform"].tolist()
        for g, t in zip(groups, transforms, strict=True):
            assert transforms[groups.index(g)] == t
        shared += len(groups) - len(set(groups))
    assert shared > 0


def test_group_index_follows_the_tables_redundancy_group_key(
    converted, store, sample_release_file, tmp_path
):
    from bigearthnet_txt.conversion.annotations import AnnotationSettings, convert_annotations

    by_type = tmp_path / "by_type"
    settings = AnnotationSettings(group_key="patch_type")
    convert_annotations(sample_release_file, by_type, settings, progress=False)
    assert table_group_key(converted) == "patch" and table_group_key(by_type) == "patch_type"
    assert table_group_key(tmp_path / "empty") == "patch"
    assert Collator(store, tokenizer=None).group_key == "patch"
    columns = ["ID", "patch_id", "type", "redundancy_weight"]
    rows = read_tables(by_type, columns=columns).to_pylist()
    patch = max(
        {r["patch_id"] for r in rows},
        key=lambda p: len({r["type"] for r in rows if r["patch_id"] == p}),
    )
    examples = [{**r, "patch_index": None} for r in rows if r["patch_id"] == patch]
    labels = label_tensors(examples, "patch_type")
    groups = labels["group_index"]
    assert int(groups.max()) + 1 == len({ex["type"] for ex in examples}) > 1
    totals = torch.zeros(int(groups.max()) + 1).index_add_(0, groups, labels["redundancy_weight"])
    torch.testing.assert_close(totals, torch.ones_like(totals))
    assert set(label_tensors(examples)["group_index"].tolist()) == {0}
    with pytest.raises(ValueError, match="group_key"):
        Collator(None, tokenizer=None, normalize=False, group_key="type")


def test_has_s1_is_emitted_without_s1_bands(texts, store):
    examples = texts["train"].select(range(48)).to_list()
    want = Collator(store, bands="all", tokenizer=None)(examples)["has_s1"]
    assert not want.all() and want.any()
    for settings in ({}, {"device_transform": True}):
        batch = Collator(store, bands="RGB", tokenizer=None, **settings)(examples)
        assert torch.equal(batch["has_s1"], want)
    native = store.read([ex["patch_index"] for ex in examples])
    joined = [
        {**ex, "s2_10m": native["s2_10m"][i], "s1": native["s1"][i]}
        for i, ex in enumerate(examples)
    ]
    from_examples = Collator(None, bands="RGB", tokenizer=None, stats=store.stats)(joined)
    assert torch.equal(from_examples["has_s1"], want)


def test_uint16_through_an_int16_view_keeps_every_value():
    values = torch.tensor([0, 1, 9999, 32767, 32768, 40000, 65535], dtype=torch.uint16)
    assert uint16_bits_to_float32(values.view(torch.int16)).tolist() == [
        float(v) for v in values.tolist()
    ]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_pinned_transfer_and_gpu_transform(texts, store):
    dataset = texts["validation"]
    settings = {
        "bands": "all",
        "resample": "bicubic",
        "tokenizer": TOKENIZER,
        "augment": Augmenter(seed=4),
    }
    reference = Collator(store, **settings)
    deferred = Collator(store, device_transform=True, **settings)
    pinned = DataLoader(dataset, batch_size=8, num_workers=2, collate_fn=deferred, pin_memory=True)
    for batch, want in zip(pinned, loader(dataset, reference), strict=True):
        assert batch["s2_10m"].is_pinned()
        moved = deferred.to_device(batch, "cuda")
        torch.cuda.synchronize()
        assert moved["image"].device.type == "cuda"
        assert moved["prompt_input_ids"].device.type == "cuda"
        torch.testing.assert_close(moved["image"].cpu(), want["image"], rtol=1e-5, atol=1e-4)
        assert torch.equal(moved["box"].cpu(), want["box"])
