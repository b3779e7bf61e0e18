"""Builds one shard of one pass from its decoded patches: the shard block of every array of the
pass and the shard's progress record.

A shard's record holds the patches present, their 10 m geo-reference, the bad patches (with
``--skip-bad``), band sums over its train rows (``band_sums``) and ``source_digest``:
``combine_digests`` of the ``patch_digest`` of every patch read for the shard, so that a resumed
run can tell whether the source bytes behind a finished shard are still those it was built from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import xxhash

from bigearthnet_txt.conversion.imagery.errors import ImageryInputError
from bigearthnet_txt.conversion.imagery.passes import DecodedPatch, Pass
from bigearthnet_txt.conversion.imagery.store_writer import band_shape, fill_value
from bigearthnet_txt.schema import ImageryArray

STATS_SPLIT = "train"


def band_sums(array: ImageryArray, block: np.ndarray) -> dict[str, list[float]]:
    """``{band: [count, sum, sum of squares]}`` over the valid pixels of ``block`` [n, bands, y, x]
    (S2: nodata 0 excluded; S1: non-finite excluded).

    The sums are those of the valid values as float64 (``numpy.sum``: pairwise). Integer bands
    are summed exactly in uint64 instead, which gives the same floats when both sums stay within
    2**53 (float64 sums of integers are exact there, in any order): for a 256-patch shard of
    120 x 120 bands, up to a mean square of 2**53 / (256 * 14400) (values around 49,000: far above
    reflectances); beyond, the float64 sums are taken."""
    sums: dict[str, list[float]] = {}
    for b, band in enumerate(array.bands):
        values = block[:, b]
        if values.dtype.kind in "ui":
            sums[band] = _integer_sums(values, array.nodata)
        else:
            sums[band] = _float_sums(values)
    return sums


_EXACT_FLOAT_INT = 2**53


def _float_sums(values: np.ndarray) -> list[float]:
    """``[count, sum, sum of squares]`` of the finite ``values`` as float64."""
    finite = np.isfinite(values)
    if finite.all():  # the values in the same order as the selection would give them
        v = values.astype(np.float64).reshape(-1)
    else:
        v = values[finite].astype(np.float64)
    total = float(v.sum())
    return [int(v.size), total, float(np.square(v, out=v).sum())]


def _integer_sums(values: np.ndarray, nodata: int | None) -> list[float]:
    """``[count, sum, sum of squares]`` of the integer ``values`` other than ``nodata``, equal to
    the float64 sums of those values (see ``band_sums``)."""
    if nodata is None or nodata == 0:  # nodata 0 adds nothing to the sums: no selection needed
        count = values.size if nodata is None else int(np.count_nonzero(values))
        wide = values.astype(np.uint64).reshape(-1)
    else:
        valid = values[values != nodata]
        count, wide = valid.size, valid.astype(np.uint64)
    total = int(np.add.reduce(wide))
    squares = int(np.vdot(wide, wide))
    if max(total, squares) > _EXACT_FLOAT_INT:  # float64 rounding: take the float64 sums
        kept = values.reshape(-1) if nodata is None else values[values != nodata]
        return _float_sums(kept)
    return [int(count), float(total), float(squares)]


def combine_digests(digests: dict[int, str | None]) -> str | None:
    """One 128-bit XXH3 digest (hex) over the ``{patch_index: patch_digest}`` of a shard's
    patches (those without a digest left out); None when none has one."""
    known = sorted((i, d) for i, d in digests.items() if d is not None)
    if not known:
        return None
    return xxhash.xxh3_128("\n".join(f"{i}:{d}" for i, d in known).encode()).hexdigest()


class ShardAssembler:
    """One shard of pass ``spec``: rows ``expected`` (patch indices), filled by ``add``.

    ``finish`` returns ``(block, record)``: ``block[array]`` has shape
    ``[shard_size, *band_shape(array)]`` and the array's dtype, rows never filled keep the fill
    value (0 for uint16, NaN for float32)."""

    def __init__(
        self,
        spec: Pass,
        shard: int,
        shard_size: int,
        expected: Iterable[int],
        split_of_index: dict[int, str],
        *,
        skip_bad: bool,
    ):
        self.spec = spec
        self.shard = shard
        self.start = shard * shard_size
        self.expected = set(expected)
        self.split_of_index = split_of_index
        self.skip_bad = skip_bad
        self.block = {
            a.name: np.full((shard_size, *band_shape(a)), fill_value(a), dtype=a.dtype)
            for a in spec.arrays
        }
        self.present: set[int] = set()
        self.profiles: dict[int, list] = {}
        self.bad: list[dict] = []
        self.digests: dict[int, str | None] = {}

    def add(self, patch: DecodedPatch, digest: str | None) -> None:
        """Take one decoded patch (or its error: raised, or recorded with ``skip_bad``) and the
        ``patch_digest`` of the bytes it was decoded from."""
        self.digests[patch.index] = digest
        if patch.error is not None:
            self.record_bad(patch.index, patch.error)
            return
        for name, values in patch.arrays.items():
            self.block[name][patch.index - self.start] = values
        self.present.add(patch.index)
        self.profiles[patch.index] = [patch.crs, list(patch.transform) if patch.transform else None]

    def record_bad(self, index: int, error: ImageryInputError) -> None:
        if not self.skip_bad:
            raise error
        self.bad.append({**error.to_record(), "patch_index": index})

    def finish(
        self, missing_error: Callable[[list[int]], ImageryInputError] | None
    ) -> tuple[dict[str, np.ndarray], dict]:
        """The shard's block and record. Expected patches never added raise/record
        ``missing_error(indices)`` unless it is None (missing allowed: rows keep the fill value)."""
        absent = sorted(self.expected - set(self.digests))
        if absent and missing_error is not None:
            if not self.skip_bad:
                raise missing_error(absent)
            for index in absent:
                self.record_bad(index, missing_error([index]))
        train_rows = [
            i - self.start for i in sorted(self.present) if self.split_of_index[i] == STATS_SPLIT
        ]
        stats: dict[str, list[float]] = {}
        for array in self.spec.arrays:
            if array.bands and train_rows:
                stats.update(band_sums(array, self.block[array.name][train_rows]))
        record = {
            "shard": self.shard,
            "present": sorted(self.present),
            "profiles": {str(i): p for i, p in sorted(self.profiles.items())},
            "bad": self.bad,
            "stats": stats,
        }
        source_digest = combine_digests(self.digests)
        if source_digest is not None:
            record["source_digest"] = source_digest
        return self.block, record
