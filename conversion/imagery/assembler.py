"""Collects decoded patches into shard blocks and hands complete shards to the writer.

Patches arrive in source order, not store order (the S1 archive is sorted by ``s1_name``, the
store by split and ``patch_id``), so each pending shard keeps a block in memory until all its
expected patches have arrived. The patches of at most ``max_open_shards`` shards are held in memory
(16: ≈ 0.65 GB for the S2 arrays, 0.5 GB for S1); those of further shards are staged on disk
(``spill.ShardSpill`` under ``DIR/.imagery-staging/<pass>/``) and merged when their shard is
written, so memory stays flat whatever the archive size.

A shard built from archive members records ``source_md5`` (``combine_digests`` of its patches'
``patch_digest``) in its marker: a resumed run streaming the archive again checks the shards it
skips against it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from bigearthnet_txt.conversion.imagery.errors import ImageryInputError
from bigearthnet_txt.conversion.imagery.passes import DecodedPatch, Pass
from bigearthnet_txt.conversion.imagery.spill import ShardSpill
from bigearthnet_txt.conversion.imagery.store_writer import StoreWriter, band_shape, fill_value
from bigearthnet_txt.schema import ImageryArray

STATS_SPLIT = "train"


def band_sums(array: ImageryArray, block: np.ndarray) -> dict[str, list[float]]:
    """``{band: [count, sum, sum of squares]}`` over the valid pixels of ``block`` [n, bands, y, x]
    (S2: nodata 0 excluded; S1: non-finite excluded)."""
    sums: dict[str, list[float]] = {}
    for b, band in enumerate(array.bands):
        values = block[:, b].astype(np.float64)
        valid = np.isfinite(values) if np.dtype(array.dtype).kind == "f" else values != array.nodata
        v = values[valid]
        sums[band] = [int(v.size), float(v.sum()), float(np.square(v).sum())]
    return sums


def combine_digests(digests: dict[int, str | None]) -> str | None:
    """One md5 over the ``{patch_index: patch_digest}`` of a shard's patches (those without a
    digest left out); None when none has one."""
    known = sorted((i, d) for i, d in digests.items() if d is not None)
    if not known:
        return None
    return hashlib.md5("\n".join(f"{i}:{d}" for i, d in known).encode()).hexdigest()


class ShardAssembler:
    """Buffers one pass's patches per shard; ``pending[shard]`` is the set of expected indices."""

    def __init__(
        self,
        spec: Pass,
        writer: StoreWriter,
        pending: dict[int, set[int]],
        split_of_index: dict[int, str],
        *,
        skip_bad: bool,
        max_open_shards: int = 16,
        on_bad: Callable[[dict], None] | None = None,
        digests: dict[int, str] | None = None,
    ):
        self.spec = spec
        self.writer = writer
        self.pending = pending
        self.split_of_index = split_of_index
        self.skip_bad = skip_bad
        self.max_open_shards = max_open_shards
        self.size = writer.shard_size
        self.received: dict[int, set[int]] = {s: set() for s in pending}
        self.profiles: dict[int, dict[int, list]] = {s: {} for s in pending}
        self.present: dict[int, set[int]] = {s: set() for s in pending}
        self.bad: dict[int, list[dict]] = {s: [] for s in pending}
        self.buffer = ShardSpill(writer.staging_dir / spec.name, max_open_shards)
        self.shards_written = 0
        self.digests = digests if digests is not None else {}

    def wants(self, index: int) -> bool:
        """True while ``index`` is expected and not yet received."""
        shard = index // self.size
        return (
            shard in self.pending
            and index in self.pending[shard]
            and index not in self.received[shard]
        )

    def _new_block(self) -> dict[str, np.ndarray]:
        return {
            a.name: np.full((self.size, *band_shape(a)), fill_value(a), dtype=a.dtype)
            for a in self.spec.arrays
        }

    def add(self, patch: DecodedPatch) -> None:
        """Take one decoded patch (or its error: raised, or recorded with ``skip_bad``)."""
        shard = patch.index // self.size
        if patch.error is not None:
            self.record_bad(shard, patch.index, patch.error)
        else:
            self.buffer.add(shard, (patch.index - shard * self.size, patch.arrays))
            self.present[shard].add(patch.index)
            self.profiles[shard][patch.index] = [
                patch.crs,
                list(patch.transform) if patch.transform else None,
            ]
        self.received[shard].add(patch.index)
        if self.received[shard] == self.pending[shard]:
            self.flush(shard)

    def record_bad(self, shard: int, index: int, error: ImageryInputError) -> None:
        if not self.skip_bad:
            raise error
        self.bad[shard].append({**error.to_record(), "patch_index": index})

    def flush(self, shard: int) -> None:
        """Write the shard's block (from its buffered patches) and its progress marker."""
        block = self._new_block()
        for row, arrays in self.buffer.pop(shard):
            for name, values in arrays.items():
                block[name][row] = values
        train_rows = [
            i - shard * self.size
            for i in sorted(self.present[shard])
            if self.split_of_index[i] == STATS_SPLIT
        ]
        stats: dict[str, list[float]] = {}
        for array in self.spec.arrays:
            if array.bands and train_rows:
                stats.update(band_sums(array, block[array.name][train_rows]))
        record = {
            "shard": shard,
            "present": sorted(self.present[shard]),
            "profiles": {str(i): p for i, p in sorted(self.profiles[shard].items())},
            "bad": self.bad[shard],
            "stats": stats,
        }
        source_md5 = combine_digests({i: self.digests.get(i) for i in self.received[shard]})
        if source_md5 is not None:
            record["source_md5"] = source_md5
        self.writer.write_shard(self.spec.name, shard, block, record)
        del self.pending[shard]
        self.shards_written += 1

    def finish(self, missing_error: Callable[[list[int]], ImageryInputError] | None) -> None:
        """Write the remaining shards. Their absent patches raise/record ``missing_error(indices)``
        unless ``missing_error`` is None (missing allowed: the rows keep the fill value)."""
        absent = sorted(i for s in self.pending for i in self.pending[s] - self.received[s])
        if absent and missing_error is not None:
            if not self.skip_bad:
                raise missing_error(absent)
            for index in absent:
                self.record_bad(index // self.size, index, missing_error([index]))
        for shard in sorted(self.pending):
            self.flush(shard)
