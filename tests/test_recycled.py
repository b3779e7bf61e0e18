"""``bigearthnet_txt.recycled``: batch memory is reused only once nothing made from it is alive."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from bigearthnet_txt import recycled

SHAPE = (64, 4, 120, 120)  # 7.4 MB of uint16


@pytest.fixture(autouse=True)
def empty_pool(monkeypatch):
    monkeypatch.setattr(recycled, "_pool", [])
    yield
    gc.collect()


def test_memory_is_reused_after_the_array_is_gone():
    first = recycled.empty(SHAPE, np.uint16)
    address = first.ctypes.data
    del first
    again = recycled.empty(SHAPE, np.uint16)
    assert again.ctypes.data == address and again.shape == SHAPE and again.dtype == np.uint16
    assert again.flags.c_contiguous and again.flags.writeable


@pytest.mark.parametrize(
    "keep",
    [
        lambda a: a,
        lambda a: a[3:5],  # a view
        lambda a: a.reshape(-1).view(np.uint8),  # a view of a view
        lambda a: torch.from_numpy(a),  # a tensor sharing the memory
        lambda a: memoryview(a),
    ],
    ids=["array", "view", "view-of-view", "tensor", "memoryview"],
)
def test_memory_still_referenced_is_never_handed_out(keep):
    first = recycled.empty(SHAPE, np.uint16)
    first[...] = 7
    held = keep(first)
    del first
    for _ in range(3):
        other = recycled.empty(SHAPE, np.uint16)
        other[...] = 0
    assert (np.asarray(held).view(np.uint16) == 7).all()


def test_small_arrays_and_other_sizes_get_their_own_memory():
    small = recycled.empty((10, 10), np.float32)
    assert small.base is None  # plain numpy.empty
    big = recycled.empty(SHAPE, np.uint16)
    address = big.ctypes.data
    del big
    much_smaller = recycled.empty((8, 4, 120, 120), np.uint16)  # under half the free buffer
    assert much_smaller.ctypes.data != address


def test_pool_drops_free_buffers_beyond_its_limit(monkeypatch):
    monkeypatch.setattr(recycled, "MAX_BUFFERS", 2)
    held = [recycled.empty(SHAPE, np.uint16) for _ in range(3)]  # all in use: all kept
    assert len(recycled._pool) == 3
    del held[:2]
    recycled.empty((2 * SHAPE[0], *SHAPE[1:]), np.uint16)
    assert len(recycled._pool) == 2  # the two free ones dropped, the held one and the new kept
