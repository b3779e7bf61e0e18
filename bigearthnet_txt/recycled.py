"""Recycled memory for large batch arrays: ``empty(shape, dtype)`` like ``numpy.empty``, but reusing
the memory of an earlier array once nothing refers to it any more.

Why: a fresh allocation of tens of megabytes (a batch of 256 patches is 70 MB) is given back to the
operating system when freed, so every batch pays for new pages (page faults and kernel zeroing): on
the benchmark machine about 29 µs per patch, more than a plain copy of the patch (19 µs). Reading
into reused memory avoids that (``bench/results/reads.md``).

An array from :func:`empty` is a view of a pooled ``uint8`` buffer; a buffer is handed out again
only when its reference count shows that no array, view or tensor made from it is alive (every
view, and ``torch.from_numpy`` of one, holds a reference to the buffer). Arrays below
``MIN_BYTES`` come from ``numpy.empty`` (small allocations are reused by ``malloc`` already). The
pool keeps at most ``MAX_BUFFERS`` buffers and ``MAX_POOL_BYTES`` bytes per process, dropping the
least recently used free buffer first.
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np

MIN_BYTES = 1 << 20
MAX_BUFFERS = 16
MAX_POOL_BYTES = 1 << 30

_pool: list[np.ndarray] = []  # least recently handed out first
_lock = threading.Lock()


def _refs(position: int) -> int:
    """References to ``_pool[position]``: the pool's own and getrefcount's argument, plus one per
    array, view or tensor made from it that is still alive."""
    return sys.getrefcount(_pool[position])


def _free_refs() -> int:
    _pool.append(np.empty(1, np.uint8))
    try:
        return _refs(len(_pool) - 1)
    finally:
        _pool.pop()


_FREE_REFS = _free_refs()


def empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype`` (see the module docstring)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype)
    with _lock:
        position = _free_position(nbytes)
        if position is None:
            _pool.append(np.empty(nbytes, np.uint8))
            _trim()
        else:
            _pool.append(_pool.pop(position))  # most recently used last
        return _pool[-1][:nbytes].view(dtype).reshape(shape)


def _free_position(nbytes: int) -> int | None:
    """Position of a free pooled buffer of ``nbytes`` to ``2 * nbytes`` bytes, if any."""
    for position in range(len(_pool)):
        if nbytes <= _pool[position].nbytes <= 2 * nbytes and _refs(position) <= _FREE_REFS:
            return position
    return None


def _trim() -> None:
    """Drop free buffers, least recently used first, while the pool is over its limits (buffers
    still in use stay, and are dropped by a later call once free; the newest, about to be handed
    out, always stays)."""
    total = sum(b.nbytes for b in _pool)
    position = 0
    while position < len(_pool) - 1 and (len(_pool) > MAX_BUFFERS or total > MAX_POOL_BYTES):
        if _refs(position) <= _FREE_REFS:
            total -= _pool.pop(position).nbytes
        else:
            position += 1
