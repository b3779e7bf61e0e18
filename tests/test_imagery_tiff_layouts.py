"""Band files read through a known ``TiffLayout`` give what tifffile and rasterio give; a file that
differs from every known layout outside its tiepoint and pixels is parsed again."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import tifffile

from bigearthnet_txt.conversion.imagery import geotiff
from bigearthnet_txt.conversion.imagery.errors import ImageryInputError
from bigearthnet_txt.conversion.imagery.geotiff import (
    Expected,
    KnownLayouts,
    read_band,
    read_band_rasterio,
)
from bigearthnet_txt.conversion.sample_data import SAMPLES_DIR, V1_S2_DIR

BAND_FILES = sorted(SAMPLES_DIR.rglob("*.tif"))
B02 = next(V1_S2_DIR.glob("*_36_85/*_B02.tif"))
MODEL_PIXEL_SCALE, MODEL_TIEPOINT, PROJECTED_CS_TYPE = 33550, 33922, 3072


@pytest.fixture
def layouts(monkeypatch) -> KnownLayouts:
    """A fresh, empty set of known layouts for ``read_band``."""
    known = KnownLayouts()
    monkeypatch.setattr(geotiff, "KNOWN_LAYOUTS", known)
    return known


def same(a, b) -> bool:
    (array_a, profile_a), (array_b, profile_b) = a, b
    return (
        profile_a == profile_b
        and array_a.dtype == array_b.dtype
        and array_a.shape == array_b.shape
        and array_a.tobytes() == array_b.tobytes()
    )


def test_every_sample_band_file_reads_alike_through_its_layout(layouts):
    first = {path: read_band(path.read_bytes(), str(path)) for path in BAND_FILES}
    matched = 0
    for path in BAND_FILES:
        data = path.read_bytes()
        matched += layouts.find(data) is not None
        again = read_band(data, str(path))
        assert same(again, first[path]), path
        array, profile = read_band_rasterio(data, str(path))
        assert profile == again[1] and np.array_equal(array, again[0], equal_nan=True), path
    assert matched == len([p for p in BAND_FILES if "reference_map" not in p.name])  # deflate


def edited(data: bytes, tag: int, fmt: str, values, offset: int = 0) -> bytes:
    """``data`` with the value of ``tag`` (from item ``offset`` on) replaced by ``values``."""
    page = tifffile.TiffFile(B02).pages.first
    start = page.tags[tag].valueoffset + offset * struct.calcsize("<" + fmt)
    packed = struct.pack(f"<{len(values)}{fmt}", *values)
    return data[:start] + packed + data[start + len(packed) :]


def test_a_file_of_a_known_layout_gets_its_own_tiepoint_and_pixels(layouts):
    data = B02.read_bytes()
    read_band(data, "learn")
    moved = edited(data, MODEL_TIEPOINT, "d", [500_010.0, 4_000_020.0], offset=3)
    moved = moved[:-2] + b"\x07\x00"  # the last pixel
    assert layouts.find(moved) is not None
    array, profile = read_band(moved, "moved")
    expected_array, expected_profile = read_band_rasterio(moved, "moved")
    assert profile == expected_profile and profile.transform[2] == 500_010.0
    assert np.array_equal(array, expected_array) and array[-1, -1] == 7


def test_a_file_differing_outside_tiepoint_and_pixels_is_parsed_again(layouts):
    data = B02.read_bytes()
    read_band(data, "learn")
    coarser = edited(data, MODEL_PIXEL_SCALE, "d", [20.0, 20.0])
    assert layouts.find(coarser) is None
    array, profile = read_band(coarser, "coarser")
    assert profile == read_band_rasterio(coarser, "coarser")[1] and profile.transform[0] == 20.0
    assert layouts.find(coarser) is not None  # learned in turn
    directory = tifffile.TiffFile(B02).pages.first.tags[34735].value
    key = list(directory[4::4]).index(PROJECTED_CS_TYPE)
    other_zone = edited(data, 34735, "H", [32633], offset=4 + 4 * key + 3)
    assert layouts.find(other_zone) is None
    assert read_band(other_zone, "other zone")[1].crs == "EPSG:32633"


def test_a_known_layout_still_checks_the_expected_shape_and_dtype(layouts):
    data = B02.read_bytes()
    read_band(data, "learn")
    assert layouts.find(data) is not None
    for expected, kind in (
        (Expected("B02", (120, 120), "float32"), "wrong-dtype"),
        (Expected("B02", (60, 60), "uint16"), "wrong-shape"),
    ):
        with pytest.raises(ImageryInputError, match="band-file-label") as err:
            read_band(data, "band-file-label", "the-patch", expected)
        assert err.value.kind == kind and err.value.patch == "the-patch"


def test_a_truncated_file_of_a_known_layout_is_corrupt(layouts):
    data = B02.read_bytes()
    read_band(data, "learn")
    with pytest.raises(ImageryInputError) as err:
        read_band(data[:-100], "cut", "the-patch")
    assert err.value.kind == "corrupt-geotiff" and err.value.path == "cut"
