"""Every pixel of every band of every real sample patch in the store equals what rasterio reads."""

from __future__ import annotations

import os
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr
from imagery_support import METADATA, S2_SAMPLES, S2_SOURCES, V1_S1_SAMPLES, read_tif

from bigearthnet_txt.conversion.imagery.convert import convert_imagery
from bigearthnet_txt.conversion.imagery.store_writer import StoreWriter
from bigearthnet_txt.conversion.sample_data import V1_S1_DIR, V2_REFERENCE_MAPS_DIR, V2_S1_DIR
from bigearthnet_txt.schema import (
    IMAGERY_ARRAYS,
    IMAGERY_STORE,
    PATCH_SCHEMA,
    PATCH_TABLE,
    S1,
    S2_BANDS,
    STORE_ATTRS_KEY,
)
from bigearthnet_txt.shards import ShardLayout
from bigearthnet_txt.store import ImageryStore, s2_to_120

V2_S1_PATCHES = {
    "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_70_48": (
        "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_70_48"
    ),
    "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_83_83": (
        "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_83_83"
    ),
    "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_89_36": (
        "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_89_36"
    ),
}
REFERENCE_MAP_PATCH = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57"


@pytest.fixture(scope="module")
def s2_store(s2_sample_store_dir):
    """All six S2 samples (v2, legacy flat, v1) with the v1 S1 pairs; the others have no S1."""
    return ImageryStore(s2_sample_store_dir)


def test_every_s2_pixel_equals_rasterio(s2_store):
    indices = s2_store.indices_of(S2_SAMPLES)
    batch = s2_store.read(indices)
    for i, (patch_id, folder) in enumerate(S2_SAMPLES.items()):
        for name in ("s2_10m", "s2_20m", "s2_60m"):
            for b, band in enumerate(IMAGERY_ARRAYS[name].bands):
                expected = read_tif(folder, band)
                assert batch[name][i, b].dtype == expected.dtype == np.uint16
                np.testing.assert_array_equal(
                    batch[name][i, b], expected, err_msg=f"{patch_id} {band}"
                )


def test_every_v1_s1_pixel_equals_rasterio_and_unpaired_are_nan(s2_store):
    table = s2_store.patches.to_pylist()
    has_s1 = {r["patch_id"]: r["has_s1"] for r in table}
    assert has_s1 == {p: p in V1_S1_SAMPLES for p in S2_SAMPLES}
    s1 = s2_store.read(s2_store.indices_of(S2_SAMPLES), ["s1"])["s1"]
    for i, patch_id in enumerate(S2_SAMPLES):
        if patch_id in V1_S1_SAMPLES:
            for b, band in enumerate(("VV", "VH")):
                expected = read_tif(V1_S1_SAMPLES[patch_id], band)
                assert s1[i, b].tobytes() == expected.tobytes(), f"{patch_id} {band}"
        else:
            assert np.isnan(s1[i]).all()


def test_v2_s1_patches_via_explicit_patch_list(tmp_path):
    """The v2 S1 samples have no S2 on disk: an S1-only store of exactly those patches."""
    convert_imagery(
        tmp_path,
        s1=[V2_S1_DIR],
        metadata=METADATA,
        patch_ids=list(V2_S1_PATCHES),
        shard_size=4,
        progress=False,
    )
    store = ImageryStore(tmp_path)
    assert store.arrays == ("s1",)
    s1 = store.read(store.indices_of(V2_S1_PATCHES), ["s1"])["s1"]
    for i, s1_name in enumerate(V2_S1_PATCHES.values()):
        folder = next(V2_S1_DIR.glob(f"*/{s1_name}"))
        for b, band in enumerate(("VV", "VH")):
            assert s1[i, b].tobytes() == read_tif(folder, band).tobytes()
    rows = store.patches.to_pylist()
    assert all(r["has_s1"] and not r["has_s2"] for r in rows)
    assert all(r["crs"] == "EPSG:32633" and r["transform"][0] == 10.0 for r in rows)


def test_reference_map_via_explicit_patch_list(tmp_path):
    convert_imagery(
        tmp_path, reference_maps=[V2_REFERENCE_MAPS_DIR], metadata=METADATA,
        patch_ids=[REFERENCE_MAP_PATCH], shard_size=4, progress=False,
    )  # fmt: skip
    store = ImageryStore(tmp_path)
    ref = store.read(store.indices_of([REFERENCE_MAP_PATCH]), ["reference_map"])["reference_map"][0]
    expected = read_tif(next(V2_REFERENCE_MAPS_DIR.glob("*/*_26_57")), "reference_map")
    assert ref.dtype == np.uint16
    np.testing.assert_array_equal(ref, expected)
    assert store.patches["has_reference_map"].to_pylist() == [True]


def test_layout_attrs_and_patch_table(s2_store):
    group = zarr.open_group(s2_store.root / IMAGERY_STORE, mode="r")  # plain zarr-python
    attrs = group.attrs[STORE_ATTRS_KEY]
    assert attrs["complete"] and attrs["format_version"] == 1
    for name in ("s2_10m", "s2_20m", "s2_60m", "s1"):
        spec = IMAGERY_ARRAYS[name]
        z = group[name]
        assert z.dtype == np.dtype(spec.dtype) and z.shape[1:] == (
            len(spec.bands),
            spec.size,
            spec.size,
        )
        assert (
            tuple(z.attrs["bands"]) == spec.bands and z.attrs["resolution_m"] == spec.resolution_m
        )
        assert z.shards[0] == 2 and z.chunks[0] == 1
    table = pq.read_table(s2_store.root / PATCH_TABLE)
    assert table.schema.equals(PATCH_SCHEMA)
    ranges = attrs["split_ranges"]
    for row in table.to_pylist():  # splits contiguous, each starting on a shard boundary
        start, stop = ranges[row["split"]]
        assert start <= row["patch_index"] < stop and start % 2 == 0
    assert set(attrs["stats"]) == set(S2_BANDS) | {"VV", "VH"}
    train = s2_store.read(s2_store.split_indices("train"), ["s2_10m"])["s2_10m"][:, 0].astype(float)
    assert attrs["stats"]["B02"]["mean"] == pytest.approx(train[train != 0].mean())
    assert attrs["stats"]["B02"]["std"] == pytest.approx(train[train != 0].std())


def test_reader_order_pickling_and_upsampling(s2_store):
    store = pickle.loads(pickle.dumps(s2_store))
    indices = s2_store.indices_of(S2_SAMPLES)
    wanted = [indices[3], indices[0], indices[3], indices[5]]
    batch = store.read(wanted, ["s2_10m", "s2_60m"])
    single = [store.read([i], ["s2_10m", "s2_60m"]) for i in wanted]
    for name in batch:
        np.testing.assert_array_equal(batch[name], np.concatenate([s[name] for s in single]))
    full = store.read_s2_120(wanted)
    assert full.shape == (4, 12, 120, 120)
    np.testing.assert_array_equal(
        full, s2_to_120(store.read(wanted, ["s2_10m", "s2_20m", "s2_60m"]))
    )
    folder = next(iter(S2_SAMPLES.values()))  # wanted[1] is the first sample
    np.testing.assert_array_equal(
        full[1, S2_BANDS.index("B09")], np.kron(read_tif(folder, "B09"), np.ones((6, 6), np.uint16))
    )
    np.testing.assert_array_equal(full[1, S2_BANDS.index("B03")], read_tif(folder, "B03"))
    assert store.band_names["s1"] == ("VV", "VH")
    assert store.stats["VV"]["mean"] < 0


@pytest.mark.filterwarnings("ignore:Numcodecs codecs are not in the Zarr version 3 specification")
@pytest.mark.parametrize("preset", ["speed", "balanced", "size"])
def test_plain_zarr_and_fast_reader_agree(tmp_path, preset):
    """Shard files written by the project's encoder read the same through zarr-python."""
    convert_imagery(
        tmp_path, s2=S2_SOURCES, s1=[V1_S1_DIR], metadata=METADATA, patch_ids=list(S2_SAMPLES),
        allow_missing_s1=True, shard_size=4, preset=preset, progress=False,
    )  # fmt: skip
    store = ImageryStore(tmp_path)
    group = zarr.open_group(tmp_path / IMAGERY_STORE, mode="r")
    rows = np.arange(group["s2_10m"].shape[0])
    fast = store.read(rows)
    for name in store.arrays:
        assert fast[name].tobytes() == group[name][:].tobytes(), name
    first = next(iter(S2_SAMPLES.values()))
    index = store.indices_of(list(S2_SAMPLES)[:1])[0]
    np.testing.assert_array_equal(fast["s2_20m"][index, 3], read_tif(first, "B8A"))


def test_tifffile_reader_equals_rasterio_on_every_sample_file():
    from bigearthnet_txt.conversion.imagery.geotiff import read_band_rasterio, read_band_tifffile
    from bigearthnet_txt.conversion.sample_data import SAMPLES_DIR

    files = sorted(p for p in SAMPLES_DIR.rglob("*") if p.suffix in (".tif", ".tiff"))
    fast_count = 0
    for path in files:
        data = path.read_bytes()
        array, profile = read_band_rasterio(data, str(path))
        fast = read_band_tifffile(data)
        assert fast is not None, path
        fast_count += 1
        assert fast[0].dtype == array.dtype and fast[0].tobytes() == array.tobytes(), path
        assert fast[1] == profile, path
    assert fast_count == len(files)


def test_two_writers_of_one_shard_never_share_a_temporary_file(tmp_path, monkeypatch):
    """Both writers finish their temporary file before either renames it (a Dask task run twice):
    each renames its own, and the shard file is one writer's whole output."""
    writer = StoreWriter(tmp_path, 1, 1, [S1], "speed", {"test": True})
    writer.open()
    target = ShardLayout.load(writer.path / S1.name).shard_path(0)
    both_written = threading.Barrier(2, timeout=10)
    replace = os.replace

    def replace_together(src, dst):
        if Path(dst) == target:
            both_written.wait()
        replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_together)
    blocks = [np.full((1, 2, 120, 120), value, np.float32) for value in (1.0, 2.0)]
    with ThreadPoolExecutor(2) as pool:
        writes = [
            pool.submit(writer.write_shard, "s1", 0, {S1.name: b}, {"shard": 0}) for b in blocks
        ]
        for write in writes:
            write.result()
    written = zarr.open_group(writer.path, mode="r")[S1.name][0]
    assert any(np.array_equal(written, b[0]) for b in blocks)
    assert not list(tmp_path.rglob("*.partial")) and writer.done_shards("s1") == {0}
