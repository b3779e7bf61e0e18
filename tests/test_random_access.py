"""BigEarthNetTxt (map-style random access) against load_dataset on the converted embedded
sample."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from bigearthnet_txt.loading import load_dataset
from bigearthnet_txt.random_access import BigEarthNetTxt
from bigearthnet_txt.schema import CONFIGS, SPLITS


@pytest.fixture(scope="session")
def converted(converted_sample):
    return converted_sample


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("random_access_cache")


def assert_same_example(got: dict, want: dict):
    assert list(got) == list(want)
    for key, value in want.items():
        if isinstance(value, np.ndarray):
            assert isinstance(got[key], np.ndarray) and got[key].dtype == value.dtype, key
            np.testing.assert_array_equal(got[key], value, err_msg=key)
        else:
            assert type(got[key]) is type(value) and got[key] == value, (key, got[key], value)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_config_and_split_equals_load_dataset(converted, cache_dir, config):
    for split in SPLITS:
        ours = BigEarthNetTxt(converted, config, split, cache_dir=cache_dir)
        theirs = load_dataset(converted, config, split, cache_dir=str(cache_dir / "hf"))
        assert len(ours) == len(theirs), (config, split)
        for i in range(len(theirs)):
            assert_same_example(ours[i], theirs[i])
        if len(ours):
            order = [len(ours) - 1, 0, len(ours) - 1]
            batch = ours.__getitems__(order)
            for got, i in zip(batch, order, strict=True):
                assert_same_example(got, theirs[i])
            assert not np.shares_memory(batch[0]["s1"], batch[2]["s1"])
            assert_same_example(ours[-1], theirs[len(theirs) - 1])
        with pytest.raises(IndexError):
            ours[len(ours)]


def test_resolution_filters_and_text_only(converted, cache_dir):
    kwargs = {"countries": ["Portugal", "Ireland"], "categories": ["presence", "point"]}
    ours = BigEarthNetTxt(converted, "all", "train", imagery=("s2",), resolution=120,
                          cache_dir=cache_dir, **kwargs)  # fmt: skip
    theirs = load_dataset(converted, "all", "train", imagery=("s2",), resolution=120,
                          cache_dir=str(cache_dir / "hf"), **kwargs)  # fmt: skip
    assert len(ours) == len(theirs) > 0
    for i in range(len(theirs)):
        assert_same_example(ours[i], theirs[i])
    assert ours[0]["s2"].shape == (12, 120, 120) and "s1" not in ours[0]
    text = BigEarthNetTxt(converted, "vqa", "train", imagery=(), cache_dir=cache_dir)
    assert "s2_10m" not in text[0] and text.__getitems__([0, 1])[1] == text[1]
    with pytest.raises(ValueError, match="countries"):
        BigEarthNetTxt(converted, countries=["Atlantis"], cache_dir=cache_dir)
    with pytest.raises(ValueError, match="config"):
        BigEarthNetTxt(converted, "pictures", cache_dir=cache_dir)


def test_cache_file_is_reused_and_memory_mapped(converted, cache_dir):
    first = BigEarthNetTxt(converted, "captions", "train", imagery=(), cache_dir=cache_dir)
    stamp = first.cache_file.stat().st_mtime_ns
    second = BigEarthNetTxt(converted, "captions", "train", imagery=(), cache_dir=cache_dir)
    assert second.cache_file == first.cache_file and first.cache_file.stat().st_mtime_ns == stamp
    other = BigEarthNetTxt(
        converted, "captions", "train", imagery=(), seasons="Summer", cache_dir=cache_dir
    )
    assert other.cache_file != first.cache_file
    assert second.table.equals(first.table)


def test_pickles_and_works_in_a_dataloader_with_workers(converted, cache_dir):
    torch = pytest.importorskip("torch")
    ds = BigEarthNetTxt(converted, "all", "train", cache_dir=cache_dir)
    clone = pickle.loads(pickle.dumps(ds))
    assert_same_example(clone[3], ds[3])

    loader = torch.utils.data.DataLoader(
        ds, batch_size=5, num_workers=2, collate_fn=list, multiprocessing_context="spawn"
    )
    rows = [row for batch in loader for row in batch]
    assert len(rows) == len(ds)
    for i in (0, len(ds) // 2, len(ds) - 1):
        assert_same_example(rows[i], ds[i])


def test_public_api_exports_it_lazily():
    import bigearthnet_txt

    assert (
        bigearthnet_txt.BigEarthNetTxt is BigEarthNetTxt
        and "BigEarthNetTxt" in bigearthnet_txt.__all__
    )
