"""load_dataset on the converted embedded sample: rows, imagery, dtypes, filters, DDP shares,
resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bigearthnet_txt import configs
from bigearthnet_txt.loading import load_dataset, split_by_node, with_imagery
from bigearthnet_txt.random_access import BigEarthNetTxt
from bigearthnet_txt.schema import CONFIGS, IMAGERY_STORE, SPLITS, TABLE_COLUMNS, shard_glob
from bigearthnet_txt.store import ImageryStore
from bigearthnet_txt.streaming import patch_batches

NATIVE_KEYS = ("s2_10m", "s2_20m", "s2_60m", "s1")


@pytest.fixture(scope="session")
def converted(converted_sample):
    return converted_sample


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("hf_cache"))


@pytest.fixture(scope="session")
def store(converted):
    return ImageryStore(converted)


def table_rows(root, config, split) -> pa.Table:
    """The rows of a config and split, read straight from the Parquet tables."""
    tables = [
        pq.read_table(p)
        for t in CONFIGS[config].tables
        for p in sorted(root.glob(shard_glob(t, split)))
    ]
    return pa.concat_tables(tables) if tables else pa.table({"ID": pa.array([], pa.int64())})


def assert_imagery(examples: list[dict], store: ImageryStore, keys=NATIVE_KEYS):
    if not examples:
        return
    expected = store.read([e["patch_index"] for e in examples], [k for k in keys if k != "s2"])
    for key in keys:
        got = np.stack([e[key] for e in examples])
        assert got.dtype == (np.float32 if key == "s1" else np.uint16), key
        want = (
            store.read_s2_120([e["patch_index"] for e in examples])
            if key == "s2"
            else expected[key]
        )
        np.testing.assert_array_equal(got, want, err_msg=key)


def rows_of(batch: dict) -> list[dict]:
    n = len(batch["ID"])
    return [{k: v[i] for k, v in batch.items()} for i in range(n)]


@pytest.mark.parametrize("config", list(CONFIGS))
def test_map_style_every_split(converted, store, cache_dir, config):
    for split in SPLITS:
        ds = load_dataset(converted, config, split, cache_dir=cache_dir)
        expected = table_rows(converted, config, split)
        assert sorted(ds["ID"]) == sorted(expected["ID"].to_pylist()), (config, split)
        assert set(TABLE_COLUMNS) <= set(ds.column_names)
        if len(ds):
            examples = rows_of(ds[:])
            assert_imagery(examples, store)
            one = ds[len(ds) - 1]
            assert one["ID"] == examples[-1]["ID"] and one["s2_10m"].shape == (4, 120, 120)
            picked = ds[[len(ds) - 1, 0]]
            np.testing.assert_array_equal(picked["s1"][0], one["s1"])


@pytest.mark.parametrize("config", list(CONFIGS))
def test_streaming_every_split(converted, store, config):
    for split in SPLITS:
        examples = list(load_dataset(converted, config, split, streaming=True))
        expected = table_rows(converted, config, split)
        assert sorted(e["ID"] for e in examples) == sorted(expected["ID"].to_pylist()), (
            config,
            split,
        )
        if examples:
            assert set(TABLE_COLUMNS) <= set(examples[0])
        assert_imagery(examples, store)


def test_split_none_returns_present_splits(converted, cache_dir):
    ds = load_dataset(converted, "captions", cache_dir=cache_dir, imagery=())
    present = configs.present_splits(converted)["captions"]
    assert set(ds) == present and "s2_10m" not in ds[next(iter(present))].column_names


def test_resampled_to_120(converted, store, cache_dir):
    ds = load_dataset(converted, "referring", "validation", resolution=120, cache_dir=cache_dir)
    assert_imagery(rows_of(ds[:]), store, keys=("s2", "s1"))
    streamed = list(
        load_dataset(converted, "referring", "validation", streaming=True, resolution=120)
    )
    assert_imagery(streamed, store, keys=("s2", "s1"))
    assert streamed[0]["s2"].shape == (12, 120, 120)


def test_parsed_answers_survive(converted, cache_dir):
    ds = load_dataset(converted, "vqa", "train", imagery=(), cache_dir=cache_dir)
    for e in ds:
        if e["type"] == "mcq":
            assert e["answer_index"] == "abcd".index(e["output"]) and len(e["options"]) == 4
        else:
            assert e["answer_bool"] == (e["output"] == "yes")


FILTERS = [
    {"countries": ["Portugal", "Ireland"]},
    {"countries": ["Serbia"]},
    {"seasons": "Summer"},
    {"categories": ["presence", "point"]},
    {"types": ["mcq"], "countries": ["Austria"]},
]


@pytest.mark.parametrize("kwargs", FILTERS)
def test_filters(converted, store, cache_dir, kwargs):
    from bigearthnet_txt.filters import row_filter

    expected = table_rows(converted, "all", "train")
    expected = expected.filter(pa.array(row_filter(**kwargs).mask(expected)))
    assert len(expected) or kwargs == {"countries": ["Serbia"]}
    ds = load_dataset(converted, "all", "train", cache_dir=cache_dir, **kwargs)
    assert sorted(ds["ID"]) == sorted(expected["ID"].to_pylist())
    streamed = list(load_dataset(converted, "all", "train", streaming=True, **kwargs))
    assert sorted(e["ID"] for e in streamed) == sorted(expected["ID"].to_pylist())
    assert_imagery(streamed, store)


def test_climate_zone_filter_and_bad_values(converted):
    zone = table_rows(converted, "all", "train")["climate_zone"][0].as_py()
    streamed = list(
        load_dataset(converted, "all", "train", streaming=True, imagery=(), climate_zones=[zone])
    )
    assert streamed and {e["climate_zone"] for e in streamed} == {zone}
    with pytest.raises(ValueError, match="countries"):
        load_dataset(converted, "all", "train", streaming=True, countries=["Atlantis"])
    with pytest.raises(ValueError, match="config"):
        load_dataset(converted, "pictures", "train")


@pytest.mark.parametrize("world_size", [2, 3])
def test_streaming_split_by_node_covers_every_row_once(converted, world_size):
    config, split = "all", "validation"
    assert len(sorted(converted.glob("data/*/validation-*.parquet"))) % world_size != 0
    full = load_dataset(converted, config, split, streaming=True, imagery=("s1",), shuffle_seed=3)
    shares = [
        [e["ID"] for e in split_by_node(full, rank, world_size)] for rank in range(world_size)
    ]
    ids = [i for share in shares for i in share]
    assert sorted(ids) == sorted(table_rows(converted, config, split)["ID"].to_pylist())
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    equal = [
        [e["ID"] for e in load_dataset(converted, config, split, streaming=True, imagery=(), rank=r,
                                       world_size=world_size, drop_remainder=True)]
        for r in range(world_size)
    ]  # fmt: skip
    assert (
        len({len(s) for s in equal}) == 1
        and len({i for share in equal for i in share}) == len(ids) // world_size * world_size
    )


def test_map_style_split_by_node(converted, store, cache_dir):
    ds = load_dataset(converted, "vqa", "validation", cache_dir=cache_dir)
    shares = [split_by_node(ds, rank, 2) for rank in range(2)]
    assert sorted([*shares[0]["ID"], *shares[1]["ID"]]) == sorted(ds["ID"])
    assert abs(len(shares[0]) - len(shares[1])) <= 1
    assert_imagery([shares[1][0]], store)


def test_resume_continues_where_it_stopped(converted):
    def fresh():
        return load_dataset(converted, "all", "validation", streaming=True, imagery=("s2",))

    reference = [e["ID"] for e in fresh()]
    for stop in (3, 11, len(reference) - 1):
        it = fresh()
        seen = []
        for e in it:
            seen.append(e["ID"])
            if len(seen) == stop:
                break
        state = it.state_dict()
        resumed = fresh()
        resumed.load_state_dict(state)
        rest = [e["ID"] for e in resumed]
        assert seen + rest == reference, stop


def test_shuffle_is_a_permutation_and_changes_with_epoch(converted):
    ds = load_dataset(
        converted, "all", "train", streaming=True, imagery=(), shuffle_seed=0, buffer_size=8
    )
    first = [e["ID"] for e in ds]
    ds.set_epoch(1)
    second = [e["ID"] for e in ds]
    assert (
        sorted(first)
        == sorted(second)
        == sorted(table_rows(converted, "all", "train")["ID"].to_pylist())
    )
    assert first != second


def test_card_configs_drive_plain_datasets_load(converted, store, cache_dir):
    import datasets

    (converted / "README.md").write_text(configs.card_yaml(converted))
    try:
        text = datasets.load_dataset(str(converted), "vqa", split="train", cache_dir=cache_dir)
        assert sorted(text["ID"]) == sorted(table_rows(converted, "vqa", "train")["ID"].to_pylist())
        assert_imagery([with_imagery(text, store)[0]], store)
    finally:
        (converted / "README.md").unlink()
    names = [c["config_name"] for c in configs.card_configs()]
    assert names == list(CONFIGS)
    vqa = next(c for c in configs.card_configs() if c["config_name"] == "vqa")
    assert {
        "split": "train",
        "path": ["data/binary/train-*.parquet", "data/mcq/train-*.parquet"],
    } in vqa["data_files"]


def test_public_api_is_lazy_and_datasets_pickle(converted, cache_dir):
    import pickle
    import subprocess
    import sys

    code = (
        "import sys, bigearthnet_txt; bigearthnet_txt.load_dataset; "
        "print('torch' in sys.modules, 'datasets' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False"]  # datasets is imported on the first call, torch never
    ds = load_dataset(converted, "mcq", "test", cache_dir=cache_dir, imagery=("s1",))
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[0]["s1"], ds[0]["s1"])


def test_streamed_rows_of_a_patch_share_read_only_imagery(converted):
    examples = list(load_dataset(converted, "binary", "train", streaming=True, imagery=("s1",)))
    first, second = [e for e in examples if e["patch_index"] == examples[0]["patch_index"]][:2]
    assert np.shares_memory(first["s1"], second["s1"])
    with pytest.raises(ValueError):
        first["s1"][0, 0, 0] = 0.0


def test_store_over_an_fsspec_url_equals_the_local_store(converted, store):
    import pickle

    import fsspec

    fs = fsspec.filesystem("memory")
    fs.put(str(converted / "imagery.zarr"), "/remote-copy/imagery.zarr", recursive=True)
    fs.put(str(converted / "patches.parquet"), "/remote-copy/patches.parquet")
    remote = pickle.loads(pickle.dumps(ImageryStore("memory://remote-copy/imagery.zarr")))
    assert remote.remote and remote.root == "memory://remote-copy"
    assert remote.arrays == store.arrays and remote.band_names == store.band_names
    assert remote.patches.equals(store.patches) and remote.split_ranges == store.split_ranges
    n = store.shape("s2_10m")[0]
    picks = [n - 1, 0, 3, 3, 1, 2]
    got, want = remote.read(picks), store.read(picks)
    for name in store.arrays:
        assert got[name].dtype == want[name].dtype
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    every = np.arange(n)
    np.testing.assert_array_equal(remote.read(every, ["s1"])["s1"], store.read(every, ["s1"])["s1"])
    ds = with_imagery(load_dataset(converted, "vqa", "train", imagery=()), "memory://remote-copy")
    assert_imagery(rows_of(ds[:]), store)
    fs.rm("/remote-copy", recursive=True)


def test_bare_name_resolves_in_the_data_home(converted, tmp_path, monkeypatch, cache_dir):
    import shutil

    from bigearthnet_txt import paths

    home = tmp_path / "home"
    shutil.copytree(converted, home)
    (home / "README.md").write_text("---\nconfigs: []\n---\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv(paths.HOME_ENV, str(home))
    assert paths.data_home() == home and paths.resolve("bigearthnet_txt") == home
    ds = load_dataset("bigearthnet_txt", "vqa", split="train", cache_dir=cache_dir)
    assert (
        ds["ID"] == load_dataset(converted, "vqa", "train", imagery=(), cache_dir=cache_dir)["ID"]
    )
    assert ds[0]["s2_10m"].dtype == np.uint16
    assert paths.resolve(converted) == converted and paths.resolve(str(converted)) == converted
    assert paths.resolve("ns/bigearthnet_txt") == "ns/bigearthnet_txt"

    (home / "README.md").unlink()  # data without a card is not a data set of the home
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("bigearthnet_txt", "vqa", split="train")
    message = str(err.value)
    assert str(home) in message and str(home / "bigearthnet_txt") in message
    assert paths.HOME_ENV in message
    with pytest.raises(FileNotFoundError, match="Looked in"):
        paths.resolve("./not-here")

    monkeypatch.delenv(paths.HOME_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert paths.data_home() == tmp_path / "user" / ".cache" / "bigearthnet_txt"


def test_kept_open_files_and_indexes_give_what_zarr_reads(converted, monkeypatch):
    import zarr

    from bigearthnet_txt import shards

    monkeypatch.setattr(shards, "MAX_OPEN_FILES", 1)
    monkeypatch.setattr(shards, "MAX_CACHED_INDEXES", 2)
    fresh = ImageryStore(converted)
    group = zarr.open_group(converted / "imagery.zarr", mode="r")
    order = np.random.default_rng(1).permutation(fresh.shape("s1")[0])
    for _ in range(2):  # the second pass reads through kept indexes and mappings
        for name in fresh.arrays:
            for i in order[:12].tolist():
                np.testing.assert_array_equal(fresh.read([i], [name])[name][0], group[name][i])
    layout = fresh._layout("s2_10m")
    assert len(layout._maps) <= 1 and len(layout._indexes) <= 2
    layout.close()
    assert layout._maps == {}


def test_stores_of_one_folder_share_mappings_and_a_replaced_file_is_mapped_anew(
    converted, tmp_path
):
    import shutil

    from bigearthnet_txt.mapped_files import MAPPED

    root = tmp_path / "copy"
    shutil.copytree(converted, root)
    first, second = ImageryStore(root), ImageryStore(root)
    want = first.read([0, 1], ["s2_10m"])["s2_10m"].copy()
    np.testing.assert_array_equal(second.read([0, 1], ["s2_10m"])["s2_10m"], want)
    a, b = first._layout("s2_10m"), second._layout("s2_10m")
    assert a._maps[0] is b._maps[0]  # one mapping of the shard file for the process

    path = Path(a.shard_path(0))  # rewritten as conversion writes: a new file renamed over it
    path.with_suffix(".new").write_bytes(path.read_bytes())
    path.with_suffix(".new").replace(path)
    third = ImageryStore(root)
    np.testing.assert_array_equal(third.read([0, 1], ["s2_10m"])["s2_10m"], want)
    assert third._layout("s2_10m")._maps[0] is not a._maps[0]

    a.close()  # lets go of its mappings and of the shared ones
    assert a._maps == {} and str(path) not in MAPPED._entries
    np.testing.assert_array_equal(b.read_rows(np.array([1, 0])), want[::-1])  # still mapped


def test_mappings_are_dropped_least_recently_used_first(converted, monkeypatch):
    import errno
    import mmap

    from bigearthnet_txt import shards

    monkeypatch.setattr(shards, "MAX_OPEN_FILES", 2)
    layout = ImageryStore(converted)._layout("s2_10m")
    assert layout.shape[0] >= 3 * layout.shard_size
    for shard in (0, 1, 0, 2):  # shard 1 is the least recently used when shard 2 comes
        layout._map_local(shard)
    assert list(layout._maps) == [0, 2]

    real_mmap, calls = mmap.mmap, []

    def out_of_mappings(*args, **kwargs):  # the first mapping fails as at vm.max_map_count
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.ENOMEM, "Cannot allocate memory")
        return real_mmap(*args, **kwargs)

    monkeypatch.setattr(shards.mmap, "mmap", out_of_mappings)
    monkeypatch.setattr(shards, "MAX_OPEN_FILES", 3)  # room left: only the failure frees some
    shards.MAPPED.clear()  # shard 1 is mapped anew, not found among the process's mappings
    layout._map_local(1)
    assert list(layout._maps) == [2, 1] and len(calls) == 2  # half the mappings freed, retried
    np.testing.assert_array_equal(
        layout.read_rows(np.array([layout.shard_size])),
        ImageryStore(converted).read([layout.shard_size], ["s2_10m"])["s2_10m"],
    )


def test_store_over_http_range_requests(converted, store):
    from range_server import serve

    with serve(converted) as server:
        remote = ImageryStore(f"{server.url}/imagery.zarr")
        picks = [5, 0, 1, 5]
        got, want = remote.read(picks), store.read(picks)
        each = remote.read_each(picks, ["s1"])["s1"]
        assert remote.patches.equals(store.patches)
        ranged = [r for r in server.requests if r[2] is not None]
    for name in store.arrays:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    for j, row in enumerate(each):  # rows in their own read-only memory, as local ones
        np.testing.assert_array_equal(row, want["s1"][j])
        assert not row.flags.writeable and row.base is None
        assert not any(np.shares_memory(row, other) for other in each[:j])
    assert ranged  # shard indexes and chunks come by byte ranges


def test_streamed_rows_of_different_patches_hold_only_their_own_patch(converted):
    examples = list(load_dataset(converted, "captions", "train", streaming=True, imagery=("s2",)))
    patches = {e["patch_index"]: e for e in examples}
    assert len(patches) > 1
    arrays = [e[key] for e in patches.values() for key in ("s2_10m", "s2_20m", "s2_60m")]
    for j, array in enumerate(arrays):
        owner = array.base  # its own allocation (or decoded bytes), not a view of a batch
        assert owner is None or (isinstance(owner, bytes) and len(owner) == array.nbytes)
        assert not array.flags.writeable
        assert not any(np.shares_memory(array, other) for other in arrays[:j])


@pytest.mark.parametrize(
    "options",
    [
        {"shuffle_seed": 1, "buffer_size": 5},
        {"batch_size": 1},
        {"decode_threads": 2, "shuffle_seed": 2},
        {"resolution": 120, "shuffle_seed": 0},
    ],
)
def test_streaming_options_give_every_row_with_its_imagery(converted, store, options):
    examples = list(load_dataset(converted, "all", "train", streaming=True, **options))
    expected = table_rows(converted, "all", "train")["ID"].to_pylist()
    assert sorted(e["ID"] for e in examples) == sorted(expected)
    keys = ("s2", "s1") if options.get("resolution") == 120 else NATIVE_KEYS
    assert_imagery(examples, store, keys=keys)


def test_patch_batches_never_cut_the_rows_of_a_patch():
    patch_index = pa.array([0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 4])
    batches = list(patch_batches(patch_index, 2))
    assert batches == [(0, 3), (3, 6), (6, 10), (10, 11)]
    assert list(patch_batches(patch_index, 100)) == [(0, 11)]
    assert list(patch_batches(pa.array([], pa.int64()), 4)) == []


def test_streaming_in_dataloader_workers(converted, store):
    from torch.utils.data import DataLoader

    ds = load_dataset(converted, "all", "train", streaming=True, imagery=("s1",), shuffle_seed=0)
    loader = DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="spawn")
    examples = list(loader)
    expected = table_rows(converted, "all", "train")["ID"].to_pylist()
    assert sorted(int(e["ID"]) for e in examples) == sorted(expected)
    assert_imagery([{**e, "s1": np.asarray(e["s1"])} for e in examples], store, keys=("s1",))


def test_shuffle_join_decodes_each_patch_once_on_either_side_of_the_buffer(store):
    from bigearthnet_txt.imagery_join import ImageryJoin
    from bigearthnet_txt.streaming import ShuffleJoin, join_each

    join = ImageryJoin(store)
    expected = join.read([0, 1, 2])

    def check(row):
        for key in join.keys:
            np.testing.assert_array_equal(row[key], expected[key][row["patch_index"]], key)

    around = ShuffleJoin(join, max_patches=8)

    def leave(row, around=around):  # what IterableDataset.map makes of a row leaving the buffer
        return {**row, **around(row)}

    few = around.before([{"patch_index": p, "ID": k} for k, p in enumerate([0, 0, 1, 2])])
    assert all(set(row) == {"patch_index", "ID"} for row in few)  # text only into the buffer
    first, other, second, last = (leave(few[k]) for k in (1, 2, 0, 3))  # leaving in any order
    for row in (first, other, second, last):
        check(row)
        assert not row["s1"].flags.writeable
    assert all(first[key] is second[key] for key in join.keys)  # patch 0 decoded once
    assert around._decoded == {} and around._pending == {}  # let go with its last row

    many = around.before([{"patch_index": p} for p in (1, 1, 2, 2)])  # imagery before the buffer
    assert all(set(join.keys) <= set(row) for row in many)
    assert np.shares_memory(many[0]["s2_10m"], many[1]["s2_10m"])
    assert around(many[0]) == {} and around._decoded == {}

    uncounted = leave({"patch_index": 2}), leave({"patch_index": 2})  # e.g. after a resume
    check(uncounted[0])
    assert uncounted[0]["s1"] is not uncounted[1]["s1"] and around._decoded == {}

    joined = list(join_each(({"patch_index": p} for p in (0, 0, 1, 0)), join))  # unshuffled
    for row in joined:
        check(row)
    assert joined[0]["s1"] is joined[1]["s1"] and joined[3]["s1"] is not joined[0]["s1"]

    bounded = ShuffleJoin(join, max_patches=1)
    rows = bounded.before([{"patch_index": p} for p in (0, 0, 1, 1, 2)])
    bounded(rows[0]), bounded(rows[2])  # patch 1 pushes patch 0 out of the one-patch cache
    assert list(bounded._decoded) == [1]
    check(leave(rows[1], bounded))  # patch 0 decoded again


def test_open_shares_one_store_per_local_folder_until_it_is_rewritten(converted, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(converted, root)
    shared = ImageryStore.open(root)
    assert ImageryStore.open(str(root / IMAGERY_STORE)) is shared
    assert ImageryStore.open(root, decode_threads=2) is not shared
    assert BigEarthNetTxt(root, "captions", "train", cache_dir=tmp_path / "c").join.store is shared
    want = shared.read([1, 0], ["s1"])["s1"].copy()
    assert shared.patches is ImageryStore.open(root).patches  # read once for both

    group = root / IMAGERY_STORE / "zarr.json"  # rewritten as conversion writes it
    group.with_suffix(".new").write_bytes(group.read_bytes())
    group.with_suffix(".new").replace(group)
    again = ImageryStore.open(root)
    assert again is not shared and again.patches is not shared.patches
    np.testing.assert_array_equal(again.read([1, 0], ["s1"])["s1"], want)
    assert ImageryStore.open("memory://x") is not ImageryStore.open("memory://x")  # URLs: own


def test_rows_per_patch_counts_a_rewritten_file_again(tmp_path):
    from bigearthnet_txt.streaming import plan_pieces, rows_per_patch

    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"patch_index": [0, 0, 1, 1]}), path)
    assert rows_per_patch(plan_pieces([str(path)])) == 2.0
    assert rows_per_patch(plan_pieces([str(path)])) == 2.0  # counted once, then remembered
    pq.write_table(pa.table({"patch_index": [0, 1, 2, 2]}), path.with_suffix(".new"))
    path.with_suffix(".new").replace(path)
    assert rows_per_patch(plan_pieces([str(path)])) == 4 / 3


def test_shuffled_streaming_joins_imagery_before_or_after_the_buffer_by_rows_per_patch(
    converted, store
):
    """Configs with fewer than two rows per patch get their imagery as rows leave the buffer (as
    they are handed out, unshuffled), the others before it; every way gives every row with its own
    patch's imagery."""
    from bigearthnet_txt.streaming import plan_pieces, rows_per_patch

    ratios = {}
    for config in ("captions", "binary", "all"):
        table = table_rows(converted, config, "train")
        files = [str(f) for f in configs.config_files(converted, config, "train")]
        pieces = plan_pieces(files)
        ratio = rows_per_patch(pieces, samples=len(pieces))  # every piece
        distinct = sum(  # each row group's rows counted against its own patches
            len(set(pq.ParquetFile(f).read_row_group(rg, ["patch_index"])[0].to_pylist()))
            for f in files
            for rg in range(pq.ParquetFile(f).num_row_groups)
        )
        assert ratio == pytest.approx(len(table) / distinct if distinct else 0.0)
        assert rows_per_patch(pieces) == pytest.approx(ratio, rel=0.5)  # a sample of 8 pieces
        ratios[config] = ratio
        for shuffle in ({"shuffle_seed": 3, "buffer_size": 7}, {}):  # in file order: row by row
            examples = list(load_dataset(converted, config, "train", streaming=True, **shuffle))
            assert sorted(e["ID"] for e in examples) == sorted(table["ID"].to_pylist())
            assert_imagery(examples, store)
            assert all(not e["s1"].flags.writeable for e in examples)
    assert min(ratios.values()) < 2 <= max(ratios.values())  # both ways are taken


def test_streamed_shuffle_is_load_dataset_with_shuffle_seed(converted, store):
    """``datasets``' idiom ``.shuffle(seed, buffer_size=...)`` on a streamed dataset gives the rows
    and imagery of ``shuffle_seed=`` (a buffer of text rows, the imagery joined where it costs
    least), with the other options (here a node's share) and the epoch kept; a ``generator`` it is
    given does not move."""
    from datasets import IterableDatasetDict

    from bigearthnet_txt.streamed_dataset import StreamedDataset
    from bigearthnet_txt.streaming import ShuffleJoin

    for config in ("captions", "all"):
        ids = []
        for rank in range(2):
            share = {"streaming": True, "rank": rank, "world_size": 2}
            plain = load_dataset(converted, config, "train", **share)
            plain.set_epoch(2)
            shuffled = plain.shuffle(seed=5, buffer_size=7)
            assert isinstance(shuffled, StreamedDataset) and shuffled.epoch == 2
            expected = load_dataset(converted, config, "train", shuffle_seed=5, buffer_size=7,
                                    **share)  # fmt: skip
            expected.set_epoch(2)
            got = list(shuffled)
            assert [e["ID"] for e in got] == [e["ID"] for e in expected]
            assert_imagery(got, store)
            ids += [e["ID"] for e in got]
        assert sorted(ids) == sorted(table_rows(converted, config, "train")["ID"].to_pylist())
    # one text per patch: each patch decoded as its row leaves the buffer
    captions = load_dataset(converted, "captions", "train", streaming=True).shuffle(seed=1)
    assert isinstance(captions._ex_iterable.function, ShuffleJoin)

    generator = np.random.default_rng(1)
    state = generator.bit_generator.state
    drawn = [e["ID"] for e in plain.shuffle(generator=generator)]
    assert generator.bit_generator.state == state
    assert drawn == [e["ID"] for e in plain.shuffle(generator=np.random.default_rng(1))]

    splits = load_dataset(converted, "all", streaming=True, imagery=()).shuffle(seed=5)
    assert isinstance(splits, IterableDatasetDict)
    assert all(isinstance(ds, StreamedDataset) for ds in splits.values())


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_streamed_tensor_formats_keep_stored_dtypes(converted, store, kind):
    """``with_format("numpy" | "torch")`` on a streamed dataset gives the imagery in its stored
    dtypes (``datasets``' formatters would copy uint16 into int64) and the text as ``datasets``'
    formatter gives it; the format survives ``shuffle`` / ``split_by_node`` / pickling, and
    ``None`` gives the plain rows back."""
    import pickle

    import torch
    from datasets.formatting import get_formatter

    from bigearthnet_txt.streamed_dataset import StreamedDataset

    plain = load_dataset(converted, "all", "validation", streaming=True)
    formatted = plain.with_format(kind)
    tensor = np.ndarray if kind == "numpy" else torch.Tensor
    as_array = np.asarray if kind == "numpy" else torch.Tensor.numpy
    rows, expected = list(formatted), list(plain)
    assert [r["ID"] for r in rows] == [r["ID"] for r in expected]
    text = get_formatter(kind)
    for row, want in zip(rows, expected, strict=True):
        for key in NATIVE_KEYS:
            assert isinstance(row[key], tensor) and row[key].shape == want[key].shape, key
            assert str(row[key].dtype).split(".")[-1] == str(want[key].dtype), key
            np.testing.assert_array_equal(as_array(row[key]), want[key])
        others = {k: v for k, v in want.items() if k not in NATIVE_KEYS}
        theirs = text.recursive_tensorize(others)
        assert list(theirs) == [k for k in row if k not in NATIVE_KEYS]
        for key, value in theirs.items():
            assert type(row[key]) is type(value), key
            if isinstance(value, tensor):
                np.testing.assert_array_equal(as_array(row[key]), as_array(value))
    for derived in (formatted.shuffle(seed=1, buffer_size=4), split_by_node(formatted, 0, 2),
                    pickle.loads(pickle.dumps(formatted))):  # fmt: skip
        assert isinstance(derived, StreamedDataset)
        assert isinstance(next(iter(derived))["s1"], tensor)
    assert sorted(r["ID"] for r in formatted.shuffle(seed=1)) == sorted(r["ID"] for r in rows)
    back = formatted.with_format(None)
    assert isinstance(next(iter(back))["s2_10m"], np.ndarray) and back.shuffle(seed=0)
