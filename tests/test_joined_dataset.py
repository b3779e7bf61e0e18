"""``JoinedDataset`` (map-style ``load_dataset``'s result) gives what ``datasets``' own path gives,
stays joined through ``datasets``' methods; ``has_s1``/``has_reference_map``; ``LoadConfig``."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from datasets import Dataset
from datasets.distributed import split_dataset_by_node
from imagery_support import METADATA

from bigearthnet_txt.conversion.imagery.convert import convert_imagery
from bigearthnet_txt.conversion.sample_data import V2_REFERENCE_MAPS_DIR
from bigearthnet_txt.imagery_join import ImageryJoin
from bigearthnet_txt.joined_dataset import JoinedDataset
from bigearthnet_txt.load_config import LoadConfig
from bigearthnet_txt.loading import load_dataset
from bigearthnet_txt.random_access import BigEarthNetTxt
from bigearthnet_txt.store import ImageryStore

REFERENCE_MAP_PATCH = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("hf_cache_joined"))


@pytest.fixture(scope="module")
def ds(converted_sample, cache_dir):
    return load_dataset(converted_sample, "all", "train", cache_dir=cache_dir)


def assert_same(a, b):
    """Equal keys in the same order, equal values of the same Python types / dtypes."""
    assert list(a) == list(b)
    for key in a:
        x, y = a[key], b[key]
        assert type(x) is type(y), key
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, key
            np.testing.assert_array_equal(x, y, err_msg=key)
        else:
            assert x == y, key


def plain(dataset, key):
    """``datasets``' own ``__getitem__`` (the formatter and the transform)."""
    return Dataset.__getitem__(dataset, key)


def test_rows_and_batches_equal_the_datasets_path(ds):
    assert isinstance(ds, JoinedDataset) and isinstance(ds, Dataset)
    n = len(ds)
    assert n > 3
    for i in (0, n - 1, -1, np.int64(2)):
        assert_same(ds[i], plain(ds, i))
    picked = [n - 1, 0, 2, 0]
    assert_same(ds[picked], plain(ds, picked))
    assert_same(ds[np.array(picked)], plain(ds, picked))
    for got, want in zip(ds.__getitems__(picked), Dataset.__getitems__(ds, picked), strict=True):
        assert_same(got, want)
    with pytest.raises(IndexError):
        ds[n]
    assert ds[1:3]["ID"] == plain(ds, slice(1, 3))["ID"]
    assert ds["ID"][:5] == plain(ds, "ID")[:5]


def test_datasets_methods_keep_the_join_and_the_fast_path(ds):
    ids = ds["ID"]
    derived = {
        "select": ds.select([3, 1, 2]),
        "shuffle": ds.shuffle(seed=0),
        "filter": ds.filter(lambda row: row["type"] != "binary"),
        "train_test_split": ds.train_test_split(test_size=0.5, seed=0)["test"],
        "split_dataset_by_node": split_dataset_by_node(ds, rank=1, world_size=2),
        "map": ds.map(lambda row: {"n_chars": len(row["input"])}),
        "sort": ds.sort("ID"),
    }
    for name, sub in derived.items():
        assert isinstance(sub, JoinedDataset), name
        assert len(sub) and set(sub["ID"]) <= set(ids), name
        for i in (0, len(sub) - 1):
            row = sub[i]
            assert row["s2_10m"].shape == (4, 120, 120) and "has_s1" in row, name
            assert_same(row, plain(sub, i))
        assert_same(sub[[len(sub) - 1, 0]], plain(sub, [len(sub) - 1, 0]))
    assert derived["map"][0]["n_chars"] == len(derived["map"][0]["input"])
    table = ds.with_format("arrow")[:1]  # a table format: datasets' own path, the text alone
    assert "s2_10m" not in table.column_names and "input" in table.column_names
    clone = pickle.loads(pickle.dumps(derived["shuffle"]))
    assert isinstance(clone, JoinedDataset)
    assert_same(clone[0], derived["shuffle"][0])


def test_has_s1_says_whether_s1_is_missing_in_every_reader(converted_sample, ds, cache_dir):
    store = ImageryStore(converted_sample)
    has_s1 = dict(
        zip(
            store.patches["patch_index"].to_pylist(),
            store.patches["has_s1"].to_pylist(),
            strict=True,
        )
    )
    assert set(has_s1.values()) == {True, False}  # the sample has patches without S1
    lean = BigEarthNetTxt(converted_sample, "all", "train", cache_dir=cache_dir)
    streamed = list(load_dataset(converted_sample, "all", "train", streaming=True))
    assert len(lean) == len(ds) == len(streamed)
    seen = set()
    for example in [ds[i] for i in range(len(ds))] + [lean[i] for i in range(len(lean))] + streamed:
        flag = example["has_s1"]
        assert type(flag) is bool and flag == has_s1[example["patch_index"]]
        assert np.isnan(example["s1"]).all() != flag
        seen.add(flag)
    assert seen == {True, False}
    for row in lean.__getitems__(list(range(len(lean)))):
        assert row["has_s1"] == has_s1[row["patch_index"]]


def test_has_reference_map(tmp_path):
    """From the patch table for a store; from the values (not all 0) for a bare reader."""
    convert_imagery(
        tmp_path, reference_maps=[V2_REFERENCE_MAPS_DIR], metadata=METADATA,
        patch_ids=[REFERENCE_MAP_PATCH], shard_size=4, progress=False,
    )  # fmt: skip
    store = ImageryStore(tmp_path)
    (index,) = store.indices_of([REFERENCE_MAP_PATCH]).tolist()
    join = ImageryJoin(store, ("reference_map",))
    batch = join({"patch_index": [index, index]})
    assert list(batch)[-2:] == ["reference_map", "has_reference_map"]
    assert batch["has_reference_map"] == [True, True] and batch["reference_map"].any()

    class BareReader:  # a store-like object without a patch table
        def read(self, indices, arrays):
            values = store.read(indices, arrays)["reference_map"].copy()
            values[1:] = 0  # the second patch has no map
            return {"reference_map": values}

    batch = ImageryJoin(BareReader(), ("reference_map",))({"patch_index": [index, index]})
    assert batch["has_reference_map"] == [True, False]


def test_load_config_object_equals_keyword_options(converted_sample, cache_dir):
    by_keywords = load_dataset(
        converted_sample, "vqa", "train", countries=["Ireland", "Austria"], imagery=("s1",),
        cache_dir=cache_dir,
    )  # fmt: skip
    cfg = LoadConfig("vqa", countries=("Ireland", "Austria"), imagery=("s1",), cache_dir=cache_dir)
    by_config = load_dataset(converted_sample, cfg, "train")
    assert by_keywords["ID"] == by_config["ID"]
    assert_same(by_keywords[0], by_config[0])
    assert list(by_config[0])[-2:] == ["s1", "has_s1"]
    text = load_dataset(converted_sample, cfg, "train", imagery=())  # keywords override
    assert "s1" not in text[0]
    with pytest.raises(TypeError, match="unknown options"):
        load_dataset(converted_sample, "vqa", "train", shuffle=True)
    with pytest.raises(ValueError, match="unknown config"):
        LoadConfig("nope")
    with pytest.raises(ValueError, match="imagery"):
        LoadConfig(imagery=("s3",))


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_tensor_formats_keep_the_imagery_in_its_dtypes(ds, kind):
    """``with_format("numpy" | "torch")`` keeps the imagery joined (``datasets``' own would drop
    it) as arrays / tensors of the stored dtypes; the text columns of a batch are what
    ``datasets``' own format gives; the format survives ``datasets``' methods and pickling;
    ``"python"`` gives the plain join back, ``None`` the text alone."""
    import torch

    store = ds._imagery_join().store
    formatted = ds.with_format(kind)
    assert isinstance(formatted, JoinedDataset) and formatted.format["type"] == "custom"
    as_array = np.asarray if kind == "numpy" else torch.Tensor.numpy

    def assert_identical(x, y, name):  # same types, dtypes and values, nested
        assert type(x) is type(y), name
        if isinstance(x, torch.Tensor) or (isinstance(x, np.ndarray) and x.dtype != object):
            assert x.dtype == y.dtype, name
            np.testing.assert_array_equal(as_array(x), as_array(y), err_msg=name)
        elif isinstance(x, (list, np.ndarray)):
            assert len(x) == len(y), name
            for a, b in zip(x, y, strict=True):
                assert_identical(a, b, name)
        else:
            assert x == y, name

    keys = [len(ds) - 1, 0, 2]
    batch, theirs = formatted[keys], ds.with_format(None).with_format(kind)[keys]
    for name, value in theirs.items():  # the text columns: exactly datasets' batch format
        assert_identical(batch[name], value, name)
    expected = store.read(np.asarray(theirs["patch_index"]), ("s2_10m", "s2_20m", "s2_60m", "s1"))
    for name, want in expected.items():
        got = batch[name]
        assert isinstance(got, np.ndarray if kind == "numpy" else torch.Tensor), name
        assert str(got.dtype).split(".")[-1] == str(want.dtype), name  # uint16 / float32
        np.testing.assert_array_equal(as_array(got), want, err_msg=name)
    assert as_array(batch["has_s1"]).dtype == bool
    row = formatted[2]
    np.testing.assert_array_equal(as_array(row["s2_10m"]), expected["s2_10m"][2])
    assert row["input"] == ds[2]["input"]

    for derived in (formatted.shuffle(seed=0).select([0]), pickle.loads(pickle.dumps(formatted)),
                    formatted.train_test_split(test_size=2, seed=0)["test"]):  # fmt: skip
        assert isinstance(derived[0]["s1"], np.ndarray if kind == "numpy" else torch.Tensor)
    chosen = formatted.with_format(kind, columns=["s2_10m", "input"])
    assert list(chosen[0]) == ["input", "s2_10m"]
    if kind == "torch":  # arrays named in columns: DataLoader's default collate batches them
        loader = torch.utils.data.DataLoader(ds.with_format(kind, columns=["s1", "s2_20m"]), 2)
        first = next(iter(loader))
        assert first["s2_20m"].dtype == torch.uint16 and first["s2_20m"].shape == (2, 6, 60, 60)
        patches = [ds[j]["patch_index"] for j in range(2)]
        np.testing.assert_array_equal(first["s1"].numpy(), store.read(patches, ["s1"])["s1"])
    everything = ds.with_format(kind, columns=["s2_10m"], output_all_columns=True)[0]
    assert set(everything) == set(ds[0]) and isinstance(everything["s1"], np.ndarray)
    with pytest.raises(ValueError, match="pictures"):
        ds.with_format(kind, columns=["pictures"])
    assert_same(formatted.with_format("python")[1], ds[1])
    assert "s2_10m" not in formatted.with_format(None)[1]


def test_to_iterable_dataset_keeps_the_imagery_format_and_shuffles_text_first(ds):
    """``to_iterable_dataset`` (``datasets`` refuses a dataset with a transform) gives the rows in
    order with their imagery; its ``shuffle`` and ``split_by_node`` work on the text rows before
    the join; a tensor format is kept."""
    import torch

    from bigearthnet_txt.loading import split_by_node
    from bigearthnet_txt.streamed_dataset import StreamedDataset

    it = ds.to_iterable_dataset(num_shards=3)
    assert isinstance(it, StreamedDataset)
    rows = list(it)
    assert [r["ID"] for r in rows] == ds["ID"][:]
    for j in (0, len(rows) - 1):
        assert_same(rows[j], ds[j])
    shuffled = it.shuffle(seed=0, buffer_size=5)
    mixed = list(shuffled)
    assert sorted(r["ID"] for r in mixed) == sorted(ds["ID"])
    assert [r["ID"] for r in mixed] != [r["ID"] for r in rows]
    by_id = {r["ID"]: r for r in rows}
    assert all(np.array_equal(r["s2_10m"], by_id[r["ID"]]["s2_10m"]) for r in mixed)
    assert type(shuffled._ex_iterable).__name__ == "MappedExamplesIterable"  # joined after it
    shares = [[r["ID"] for r in split_by_node(shuffled, k, 2)] for k in range(2)]
    assert sorted(shares[0] + shares[1]) == sorted(ds["ID"]) and not set(shares[0]) & set(shares[1])
    tensors = ds.with_format("torch").to_iterable_dataset()
    first = next(iter(tensors.shuffle(seed=1)))
    assert first["s2_10m"].dtype == torch.uint16 and first["s1"].dtype == torch.float32


def test_map_and_filter_decode_imagery_only_for_functions_that_read_it(ds, monkeypatch):
    """A batched ``map``/``filter`` function gets batches whose imagery is read when it asks for it
    (one over text reads no patch), as does one given ``input_columns``; a row-at-a-time function
    gets each row with its imagery; the results stay joined, with the fast ``ds[i]``."""
    reads = []
    original = ImageryJoin.read
    monkeypatch.setattr(
        ImageryJoin, "read", lambda self, p: reads.append(len(p)) or original(self, p)
    )
    fresh = {"load_from_cache_file": False}
    lengths = ds.map(lambda batch: {"n": [len(t) for t in batch["input"]]}, batched=True, **fresh)
    named = ds.map(lambda texts: {"m": [len(t) for t in texts]}, input_columns="input",
                   batched=True, **fresh)  # fmt: skip
    kept = ds.filter(lambda batch: [t != "binary" for t in batch["type"]], batched=True, **fresh)
    kept_named = ds.filter(lambda kind: kind != "binary", input_columns=["type"], **fresh)
    assert reads == []
    assert lengths["n"][:] == named["m"][:] == [len(t) for t in ds["input"]]
    assert kept["ID"][:] == kept_named["ID"][:] == [r["ID"] for r in ds if r["type"] != "binary"]
    for result in (lengths, kept):
        assert isinstance(result, JoinedDataset) and result._join() is not None
        assert_same(result[0], plain(result, 0))
        assert result[0]["s2_10m"].shape == (4, 120, 120)
    reads.clear()

    def mean_red(batch):  # an imagery key looked up: the batch's patches are read once
        assert "s2_10m" in batch and len(batch) == len(list(batch))
        return {"red": [float(v[2].mean()) for v in batch["s2_10m"]]}

    red = ds.map(mean_red, batched=True, batch_size=4, **fresh)
    assert reads and sum(reads) == len(ds)
    assert red["red"][:] == pytest.approx(
        [float(ds[i]["s2_10m"][2].mean()) for i in range(len(ds))]
    )
    reads.clear()
    ds.map(lambda row: {"n": len(row["input"])}, **fresh)
    assert sum(reads) >= len(ds)  # row at a time: every row comes with its imagery


def test_without_patch_index_rows_have_no_imagery_and_no_error(ds):
    """Dropping ``patch_index`` (``select_columns``, ``remove_columns``, a ``map`` removing it)
    leaves rows that cannot be joined: the text columns alone, by every kind of key."""
    for sub in (ds.select_columns(["ID", "input"]), ds.remove_columns("patch_index"),
                ds.map(lambda b: {}, batched=True, remove_columns=["patch_index"])):  # fmt: skip
        names = sub.column_names
        assert "patch_index" not in names
        for key in (0, [1, 0], slice(0, 2)):
            assert list(sub[key]) == names
        assert sub[1]["ID"] == ds[1]["ID"]
