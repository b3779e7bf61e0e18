"""``band_sums``: the recorded band statistics are the float64 sums of the valid values, whichever
way they are computed (exact integer sums for uint16 bands, float64 beyond 2**53)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bigearthnet_txt.conversion.imagery.assembler import band_sums
from bigearthnet_txt.schema import S1, S2_10M, S2_20M


def float64_sums(array, block: np.ndarray) -> dict[str, list[float]]:
    """The definition: count, sum and sum of squares of the valid values as float64 (pairwise)."""
    sums = {}
    for b, band in enumerate(array.bands):
        values = block[:, b].astype(np.float64)
        valid = np.isfinite(values) if np.dtype(array.dtype).kind == "f" else values != array.nodata
        v = values[valid]
        sums[band] = [int(v.size), float(v.sum()), float(np.square(v).sum())]
    return sums


@pytest.mark.parametrize("high", [2, 300, 12_000, 65_536])
def test_uint16_sums_equal_the_float64_sums(high):
    rng = np.random.default_rng(high)
    block = rng.integers(0, high, size=(37, 4, 120, 120), dtype=np.uint16)
    block[3, :, :10] = 0  # nodata
    assert band_sums(S2_10M, block) == float64_sums(S2_10M, block)


def test_uint16_sums_beyond_exact_float_range_equal_the_float64_sums():
    rng = np.random.default_rng(0)
    block = np.full((600, 6, 60, 60), 65_535, dtype=np.uint16)
    block[::3] = rng.integers(0, 65_536, size=block[::3].shape, dtype=np.uint16)
    assert block[:, 0].size * 65_535.0**2 > 2**53  # the float64 sum of squares rounds here
    assert band_sums(S2_20M, block) == float64_sums(S2_20M, block)


def test_float32_sums_leave_out_non_finite_values():
    rng = np.random.default_rng(1)
    block = (rng.normal(size=(29, 2, 120, 120)) * 5 - 15).astype(np.float32)
    block[rng.random(block.shape) < 0.02] = np.nan
    block[0, 0, 0, :2] = [np.inf, -np.inf]
    sums = band_sums(S1, block)
    assert sums == float64_sums(S1, block)
    assert sums["VV"][0] == int(np.isfinite(block[:, 0]).sum())


@pytest.mark.parametrize("nodata", [None, 7])
def test_uint16_sums_with_another_nodata_equal_the_float64_sums(nodata):
    array = dataclasses.replace(S2_10M, nodata=nodata)
    block = np.random.default_rng(2).integers(0, 20, size=(11, 4, 120, 120), dtype=np.uint16)
    sums = band_sums(array, block)
    assert sums == float64_sums(array, block)
    left_out = 0 if nodata is None else int((block[:, 0] == nodata).sum())
    assert sums["B02"][0] == block[:, 0].size - left_out > 0


def test_float32_sums_of_finite_values_equal_the_float64_sums():
    block = (np.random.default_rng(3).normal(size=(13, 2, 120, 120)) * 5 - 15).astype(np.float32)
    assert band_sums(S1, block[::2]) == float64_sums(S1, block[::2])
