"""Grouped streaming: patch-grouped batches read straight from the Parquet row groups.

    stream = GroupedStream(DIR, "all", "train", batch_size=256, texts_per_patch=4, seed=0,
                           rank=rank, world_size=world_size)
    loader = DataLoader(stream, batch_size=None, num_workers=4, collate_fn=Collator(DIR))
    for epoch in range(epochs):
        stream.set_epoch(epoch)
        for batch in loader: ...

Each item is one batch: a list of rows (dicts of the ``TABLE_SCHEMA`` columns, as the streaming
``load_dataset`` yields them), whole patches per batch. The construction reads small columns of the
tables (``patch_id``, ``patch_index``, ``type``, the filter columns), never the texts; each epoch is
planned
by :func:`bigearthnet_txt.sampler.plan_blocks_epoch` (patch blocks shuffled per seed and epoch,
blocks dealt to ranks, equal batch counts on every rank, each row at most once). Iterating reads
only the row groups that hold the rank's rows, block by block (a small cache of row groups), so
memory stays at a few row groups. DataLoader workers take every ``num_workers``-th batch.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bigearthnet_txt.configs import config_files
from bigearthnet_txt.filters import row_filter as make_row_filter
from bigearthnet_txt.paths import resolve
from bigearthnet_txt.sampler import (
    Batches,
    check_arguments,
    dist_rank_world,
    patch_codes,
    plan_blocks_epoch,
    type_mask,
)
from bigearthnet_txt.schema import TABLE_SCHEMA

try:  # a torch IterableDataset where torch is present, so DataLoader splits it over workers
    from torch.utils.data import IterableDataset as _Base
    from torch.utils.data import get_worker_info
except ImportError:  # pragma: no cover - torch is a dependency
    _Base = object

    def get_worker_info():
        return None


CACHED_ROW_GROUPS = 16


class GroupedStream(_Base):
    """Patch-grouped batches of one config and split of a converted folder, streamed from Parquet.

    Arguments as :class:`bigearthnet_txt.sampler.PatchBatchSampler` (``batch_size``,
    ``texts_per_patch``, ``types``, ``shuffle``, ``seed``, ``rank``, ``world_size``,
    ``oversize``), the filters of ``load_dataset`` (``countries``, ``seasons``, ``climate_zones``,
    ``categories``) and ``block_patches``: patches per shuffle block (larger: better mixing, more
    row groups read per block).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        config: str = "all",
        split: str = "train",
        *,
        batch_size: int,
        texts_per_patch: int | None = None,
        types: Sequence[str] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        oversize: str = "split",
        block_patches: int = 4096,
        countries: Iterable[str] | None = None,
        seasons: Iterable[str] | None = None,
        climate_zones: Iterable[str] | None = None,
        categories: Iterable[str] | None = None,
    ):
        check_arguments(batch_size, texts_per_patch, oversize)
        if block_patches < 1:
            raise ValueError(f"block_patches must be positive, got {block_patches}")
        target = resolve(root)
        if isinstance(target, str):
            raise ValueError(
                f"{target!r} is a Hub repository; GroupedStream reads converted folders"
            )
        self.root = Path(target)
        self.rows = make_row_filter(countries, seasons, climate_zones, categories, None)
        self.files = [str(p) for p in config_files(self.root, config, split)]
        self.batch_size, self.texts_per_patch = int(batch_size), texts_per_patch
        self.shuffle, self.seed, self.oversize = shuffle, int(seed), oversize
        self.block_patches = int(block_patches)
        self.rank, self.world_size = dist_rank_world(rank, world_size)
        self.epoch = 0
        self._index(types)
        self._plan: tuple[int, Batches] | None = None

    def _index(self, types: Sequence[str] | None) -> None:
        """Where every kept row lives (file, row group, position in it) and its patch."""
        where, ids, kinds, indices = [], [], [], []
        columns = sorted({"patch_id", "patch_index", "type", *self.rows})
        for f, path in enumerate(self.files):
            pf = pq.ParquetFile(path)
            for rg in range(pf.num_row_groups):
                part = pf.read_row_group(rg, columns=columns)
                position = np.arange(part.num_rows, dtype=np.int64)
                if self.rows:
                    mask = self.rows.mask(part)
                    part, position = part.filter(pa.array(mask)), position[mask]
                where.append(np.stack([np.full(len(position), f), np.full(len(position), rg),
                                       position], axis=1))  # fmt: skip
                ids.append(part.column("patch_id"))
                kinds.append(part.column("type"))
                indices.append(part.column("patch_index"))
        self.where = np.concatenate(where) if where else np.zeros((0, 3), np.int64)
        patch_ids = pa.chunked_array([c for i in ids for c in i.chunks], pa.string())
        index = pa.chunked_array([c for i in indices for c in i.chunks], pa.int32())
        # number patches in table order (patch_index) where every row has one
        self.codes = patch_codes(
            patch_ids, None if index.null_count else index.to_numpy().astype(np.int64)
        )
        kind = pa.chunked_array([c for k in kinds for c in k.chunks], pa.string())
        self.keep = type_mask(kind, types)

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s draw and order (before iterating; workers copy the stream when
        an iteration starts, so ``persistent_workers=True`` keeps the epoch they started with)."""
        self.epoch = int(epoch)

    def batches(self) -> Batches:
        """This rank's batches of the current epoch (row numbers into ``self.where``)."""
        if self._plan is None or self._plan[0] != self.epoch:
            per_rank = plan_blocks_epoch(
                self.codes, self.batch_size, self.block_patches, keep=self.keep,
                texts_per_patch=self.texts_per_patch, shuffle=self.shuffle, seed=self.seed,
                epoch=self.epoch, world_size=self.world_size, oversize=self.oversize,
            )  # fmt: skip
            self._plan = (self.epoch, per_rank[self.rank])
        return self._plan[1]

    def __len__(self) -> int:
        """Batches of this rank in the current epoch (the same on every rank)."""
        return len(self.batches())

    def __iter__(self) -> Iterator[list[dict]]:
        batches = self.batches()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        cache: OrderedDict[tuple[int, int], pa.Table] = OrderedDict()
        for i in range(worker, len(batches), workers):
            yield self._read(batches.batch(i), cache)

    def _read(self, rows: np.ndarray, cache: OrderedDict) -> list[dict]:
        """The rows (numbers into ``self.where``) as dicts, in batch order."""
        out: list[dict | None] = [None] * len(rows)
        places = self.where[rows]
        keys = places[:, 0] * (1 << 32) + places[:, 1]
        for key in np.unique(keys).tolist():
            picked = np.flatnonzero(keys == key)
            f, rg = divmod(key, 1 << 32)
            table = cache.get((f, rg))
            if table is None:
                table = pq.ParquetFile(self.files[f]).read_row_group(rg)
                table = table.select(TABLE_SCHEMA.names).cast(TABLE_SCHEMA)
                cache[(f, rg)] = table
                if len(cache) > CACHED_ROW_GROUPS:
                    cache.popitem(last=False)
            else:
                cache.move_to_end((f, rg))
            for k, row in zip(
                picked.tolist(), table.take(places[picked, 2]).to_pylist(), strict=True
            ):
                out[k] = row
        return out  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (
            f"GroupedStream({str(self.root)!r}, rows={len(self.codes)}, "
            f"batch_size={self.batch_size}, texts_per_patch={self.texts_per_patch}, "
            f"rank={self.rank}/{self.world_size}, epoch={self.epoch})"
        )
