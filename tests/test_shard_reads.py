"""``bigearthnet_txt.shards`` reads equal zarr-python's for every codec preset, in any row order,
and the read-optimised preset round-trips every real sample patch exactly."""

from __future__ import annotations

import google_crc32c
import numpy as np
import pytest
import zarr
from imagery_support import METADATA, S2_SAMPLES, S2_SOURCES, V1_S1_SAMPLES, read_tif

from bigearthnet_txt.conversion.imagery.codecs import PRESETS, describe
from bigearthnet_txt.conversion.imagery.convert import convert_imagery
from bigearthnet_txt.conversion.sample_data import V1_S1_DIR, V2_REFERENCE_MAPS_DIR, V2_S1_DIR
from bigearthnet_txt.schema import IMAGERY_ARRAYS, IMAGERY_STORE
from bigearthnet_txt.shards import ShardLayout
from bigearthnet_txt.store import ImageryStore

pytestmark = pytest.mark.filterwarnings(
    "ignore:Numcodecs codecs are not in the Zarr version 3 specification"
)
# The v2 S1 samples (no S2 on disk): patch_id -> s1_name.
V2_S1_PATCHES = {
    f"S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_{k}": f"S1A_IW_GRDH_1SDV_20170613T165043_33UUP_{k}"  # noqa: E501
    for k in ("70_48", "83_83", "89_36")
}


@pytest.fixture(scope="module", params=PRESETS)
def preset_store(request, tmp_path_factory):
    """The six S2 samples (three with S1) converted with one preset, three patches per shard."""
    out = tmp_path_factory.mktemp(f"store_{request.param}")
    convert_imagery(
        out, s2=S2_SOURCES, s1=[V1_S1_DIR], metadata=METADATA, patch_ids=list(S2_SAMPLES),
        allow_missing_s1=True, shard_size=3, preset=request.param, progress=False,
    )  # fmt: skip
    return request.param, out


@pytest.mark.parametrize("decode_threads", [1, 2])
def test_shard_reads_equal_zarr_python_in_any_order(preset_store, decode_threads):
    preset, root = preset_store
    store = ImageryStore(root, decode_threads=decode_threads)
    group = zarr.open_group(root / IMAGERY_STORE, mode="r")
    n = group["s2_10m"].shape[0]
    rng = np.random.default_rng(0)
    orders = [
        np.arange(n),
        rng.permutation(n),
        np.array([n - 1, 0, n - 1, 2, 0, 1]),  # repeats, across shards, descending
        np.array([4]),
        np.array([], dtype=np.int64),
    ]
    for name in store.arrays:
        assert ShardLayout.load(root / IMAGERY_STORE / name) is not None, (preset, name)
        plain = group[name]
        for rows in orders:
            ours = store.read(rows, [name])[name]
            expected = plain.get_orthogonal_selection((rows,) + (slice(None),) * (plain.ndim - 1))
            assert ours.shape == expected.shape and ours.dtype == expected.dtype
            assert ours.tobytes() == expected.tobytes(), (preset, name, rows.tolist())
            each = store.read_each(rows, [name])[name]
            assert len(each) == len(rows)
            for j, row in enumerate(each):
                assert row.shape == expected.shape[1:] and row.tobytes() == expected[j].tobytes()
                assert not any(np.shares_memory(row, other) for other in each[:j])
            ones = [store.read_one(int(row), [name])[name] for row in rows]
            for j, one in enumerate(ones):
                assert one.shape == expected.shape[1:] and one.tobytes() == expected[j].tobytes()
                assert not one.flags.writeable
                assert not any(np.shares_memory(one, other) for other in ones[:j])
        store._layout(name).close()  # read_one maps its shards again
        assert store.read_one(n - 1, [name])[name].tobytes() == plain[n - 1].tobytes()


def test_read_one_names_what_it_cannot_read(preset_store):
    _, root = preset_store
    store = ImageryStore(root)
    n = store.shape("s2_10m")[0]
    for index in (n, -1):
        with pytest.raises(IndexError, match="s2_10m: patch index out of range"):
            store.read_one(index, ["s2_10m", "s1"])
    with pytest.raises(KeyError, match="unknown array 'x'"):
        store.read_one(0, ["s2_10m", "x"])
    assert list(store.read_one(0)) == list(store.arrays)


def test_read_preset_round_trips_every_sample_patch(tmp_path):
    """Every band of every real S2, S1 and reference-map sample comes back byte for byte."""
    convert_imagery(
        tmp_path, s2=S2_SOURCES, s1=[V1_S1_DIR], metadata=METADATA, patch_ids=list(S2_SAMPLES),
        allow_missing_s1=True, shard_size=4, preset="read", progress=False,
    )  # fmt: skip
    store = ImageryStore(tmp_path)
    assert store.attrs["codecs"] == describe("read")
    assert store.metas["s2_10m"]["codecs"][0]["configuration"]["codecs"] == [
        {"name": "bytes", "configuration": {"endian": "little"}}
    ]
    indices = store.indices_of(S2_SAMPLES)
    batch = store.read(indices[::-1])
    for i, (patch_id, folder) in enumerate(reversed(S2_SAMPLES.items())):
        for name in ("s2_10m", "s2_20m", "s2_60m"):
            for b, band in enumerate(IMAGERY_ARRAYS[name].bands):
                assert batch[name][i, b].tobytes() == read_tif(folder, band).tobytes(), patch_id
        if patch_id in V1_S1_SAMPLES:
            for b, band in enumerate(("VV", "VH")):
                expected = read_tif(V1_S1_SAMPLES[patch_id], band)
                assert batch["s1"][i, b].tobytes() == expected.tobytes(), (patch_id, band)
        else:
            assert np.isnan(batch["s1"][i]).all()

    maps = tmp_path / "maps"
    convert_imagery(
        maps, reference_maps=[V2_REFERENCE_MAPS_DIR], metadata=METADATA,
        patch_ids=[p.name for p in V2_REFERENCE_MAPS_DIR.glob("*/*")], shard_size=4,
        preset="read", progress=False,
    )  # fmt: skip
    store = ImageryStore(maps)
    folders = sorted(V2_REFERENCE_MAPS_DIR.glob("*/*"))
    assert folders
    values = store.read(store.indices_of([f.name for f in folders]), ["reference_map"])
    for i, folder in enumerate(folders):
        expected = read_tif(folder, "reference_map")
        assert values["reference_map"][i].tobytes() == expected.tobytes(), folder.name

    s1_only = tmp_path / "s1_only"
    convert_imagery(
        s1_only, s1=[V2_S1_DIR], metadata=METADATA, patch_ids=list(V2_S1_PATCHES), shard_size=4,
        preset="read", progress=False,
    )  # fmt: skip
    store = ImageryStore(s1_only)
    s1 = store.read(store.indices_of(V2_S1_PATCHES), ["s1"])["s1"]
    for i, s1_name in enumerate(V2_S1_PATCHES.values()):
        folder = next(V2_S1_DIR.glob(f"*/{s1_name}"))
        for b, band in enumerate(("VV", "VH")):
            assert s1[i, b].tobytes() == read_tif(folder, band).tobytes(), (s1_name, band)


@pytest.mark.parametrize("decode_threads", [1, 2])
@pytest.mark.parametrize("preset", ["speed", "read"])
def test_damaged_chunk_is_refused_before_decoding(tmp_path, preset, decode_threads):
    """A Blosc chunk whose header declares another decoded size than one patch, or a raw chunk of
    another size, gives a ValueError naming the array (nothing is decompressed into memory of the
    wrong size); the other chunks still read."""
    convert_imagery(
        tmp_path, s2=S2_SOURCES, metadata=METADATA, patch_ids=list(S2_SAMPLES), shard_size=3,
        preset=preset, progress=False,
    )  # fmt: skip
    array_dir = tmp_path / IMAGERY_STORE / "s2_10m"
    layout = ShardLayout.load(array_dir)
    path = layout.shard_path(0)
    data = bytearray(path.read_bytes())
    index_at = len(data) - (layout.shard_size * 16 + 4)
    offset, nbytes = layout.parse_index(bytes(data[index_at:]))[1].tolist()
    if preset == "read":  # row 1 one byte shorter, index checksum made right again
        assert nbytes == layout.chunk_nbytes
        data[index_at + 24 : index_at + 32] = (nbytes - 1).to_bytes(8, "little")
        crc = google_crc32c.value(bytes(data[index_at:-4]))
        data[-4:] = crc.to_bytes(4, "little")
        expected = "a raw chunk of .* bytes, expected"
    else:
        declared = int.from_bytes(data[offset + 4 : offset + 8], "little")
        assert declared == layout.chunk_nbytes
        data[offset + 4 : offset + 8] = (declared * 4).to_bytes(4, "little")
        expected = "a Blosc chunk .* expected"
    path.write_bytes(bytes(data))
    store = ImageryStore(tmp_path, decode_threads=decode_threads)
    for read in (store.read, store.read_each):
        for rows in ([1], [0, 1, 2], [2, 1]):
            with pytest.raises(ValueError, match=f"{array_dir}: {expected}"):
                read(rows, ["s2_10m"])
    assert store.read([0, 2], ["s2_10m"])["s2_10m"].shape == (2, 4, 120, 120)


def test_read_rows_refuses_an_out_it_cannot_decode_into(preset_store):
    _, root = preset_store
    layout = ShardLayout.load(root / IMAGERY_STORE / "s2_20m")
    shape = (2, *layout.chunk_shape[1:])
    for out in (
        np.empty(shape, np.float32),  # wrong dtype
        np.empty((3, *shape[1:]), layout.dtype),  # wrong length
        np.empty((2, *shape[1:], 2), layout.dtype)[..., 0],  # not contiguous
        [np.empty(shape[1:], layout.dtype) for _ in range(2)],  # not an array
    ):
        with pytest.raises(ValueError, match="C-contiguous writeable"):
            layout.read_rows(np.array([0, 1]), out=out)
    out = np.empty(shape, layout.dtype)
    assert layout.read_rows(np.array([1, 0]), out=out) is out
