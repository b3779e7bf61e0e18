"""Shard-aware streaming of annotation tables: row-group pieces, equal splits by node,
resumable state.

The unit of streaming is a :class:`Piece`: a range ``[start, stop)`` of the (filtered) rows of one
Parquet row group. :func:`plan_pieces` makes one piece per non-empty row group, in file order (rows
sorted by patch, so consecutive rows share imagery). :func:`split_pieces` cuts the concatenated rows
into ``world_size`` contiguous ranges whose lengths differ by at most one, so every rank gets an
equal, disjoint share whatever the number of files or row groups; with ``drop_remainder`` every rank
gets exactly ``N // world_size`` rows (what DDP needs to stay in step).

:func:`iterable_dataset` turns pieces into a ``datasets.IterableDataset`` (``from_generator``, one
shard per piece): ``.shuffle(seed, buffer_size)`` shuffles pieces and rows, DataLoader workers split
pieces, and ``state_dict()`` / ``load_state_dict()`` resume an interrupted iteration.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bigearthnet_txt.filters import RowFilter
from bigearthnet_txt.mapped_files import file_version


@dataclass(frozen=True)
class Piece:
    """Rows ``[start, stop)`` of the filtered rows of row group ``row_group`` of Parquet file
    ``path``."""

    path: str
    row_group: int
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


def plan_pieces(files: Sequence[str], row_filter: RowFilter | None = None) -> list[Piece]:
    """One piece per row group of ``files`` that keeps at least one row after ``row_filter``.

    Without a filter the row counts come from the Parquet footers; with one, only the filtered
    columns are read to count the rows kept.
    """
    pieces = []
    for path in files:
        pf = pq.ParquetFile(path)
        for rg in range(pf.num_row_groups):
            if row_filter:
                n = int(row_filter.mask(pf.read_row_group(rg, columns=list(row_filter))).sum())
            else:
                n = pf.metadata.row_group(rg).num_rows
            if n:
                pieces.append(Piece(str(path), rg, 0, n))
    return pieces


def split_pieces(
    pieces: Sequence[Piece], rank: int, world_size: int, drop_remainder: bool = False
) -> list[Piece]:
    """The pieces of node ``rank``: rows ``[rank*N//W, (rank+1)*N//W)`` of the concatenated pieces.

    Ranks together cover every row exactly once (lengths differ by at most one); with
    ``drop_remainder`` each rank gets ``N // W`` rows and the last ``N % W`` rows are left out.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    sizes = np.array([len(p) for p in pieces], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    total = int(offsets[-1])
    if drop_remainder:
        share = total // world_size
        lo, hi = rank * share, (rank + 1) * share
    else:
        lo, hi = rank * total // world_size, (rank + 1) * total // world_size
    out = []
    for piece, first in zip(pieces, offsets[:-1].tolist(), strict=True):
        a, b = max(lo, first), min(hi, first + len(piece))
        if a < b:
            out.append(
                Piece(piece.path, piece.row_group, piece.start + a - first, piece.start + b - first)
            )
    return out


def read_piece(
    piece: Piece, row_filter: RowFilter | None = None, columns: Sequence[str] | None = None
) -> pa.Table:
    """The rows of one piece as a ``pyarrow.Table``."""
    table = pq.ParquetFile(piece.path).read_row_group(piece.row_group, columns=columns)
    if row_filter:
        table = table.filter(pa.array(row_filter.mask(table)))
    return table.slice(piece.start, len(piece))


def rows_per_patch(
    pieces: Sequence[Piece], row_filter: RowFilter | None = None, samples: int = 8
) -> float:
    """Rows per patch in up to ``samples`` pieces spread over ``pieces`` (rows after
    ``row_filter``; each piece's rows counted against its distinct patches); 0 for no rows.
    Each piece is counted once per process and version of its file."""
    rows = patches = 0
    wanted = tuple(sorted((column, tuple(v)) for column, v in (row_filter or {}).items()))
    for k in sorted({j * len(pieces) // samples for j in range(samples)} & set(range(len(pieces)))):
        piece = pieces[k]
        counted = _rows_and_patches(piece, file_version(piece.path), wanted)
        rows, patches = rows + counted[0], patches + counted[1]
    return rows / patches if patches else 0.0


@functools.lru_cache(maxsize=4096)
def _rows_and_patches(piece: Piece, version, wanted: tuple) -> tuple[int, int]:
    """``(rows, distinct patches)`` of ``piece`` after the filter ``wanted`` (``RowFilter`` items)
    (``version``: the file's, so a rewritten file is counted again)."""
    row_filter = RowFilter(wanted)
    column = read_piece(piece, row_filter, ["patch_index", *row_filter])["patch_index"]
    return len(column), pc.count_distinct(column).as_py()


def patch_batches(patch_index: pa.ChunkedArray | pa.Array, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` row ranges of about ``size`` rows that never cut the run of rows of one
    patch (rows are sorted by patch), so each patch is read once."""
    values = patch_index.to_numpy(zero_copy_only=False)
    n, start = len(values), 0
    while start < n:
        stop = min(start + size, n)
        while stop < n and values[stop] == values[stop - 1]:
            stop += 1
        yield start, stop
        start = stop


class ShuffleJoin:
    """Joins imagery around a shuffle buffer: before it where rows of a patch are many, after it
    where they are few, each patch decoded once.

    :meth:`before` takes each batch of rows in file order (the generator's): when the batch has at
    least two rows per patch they get their imagery there (``ImageryJoin.join_rows``: one decode per
    patch, shared by its rows, which then wait in the buffer with it); otherwise the rows go into
    the buffer as text and each patch's rows are counted. Called on a row leaving the buffer (the
    function of ``IterableDataset.map``), the instance returns the imagery of a row that has none,
    which the map adds to the row (``ImageryJoin.read_one``: read-only arrays), decoded the first
    time one of its patch's rows leaves and kept while more of them are still in the buffer, at
    most ``max_patches`` patches (least recently used dropped first; a dropped patch is decoded
    again). A row whose patch was not counted (a resumed iteration whose buffer was refilled) gets
    a decode of its own.

    Why: with one text per patch, rows that hold their imagery in a buffer of 1000 rows keep
    280 MB alive, and each decode writes to memory last used about 1000 rows earlier; decoding as
    a row leaves writes to memory just freed. With many texts per patch the shared decode in file
    order costs least (``bench/results/reads.md``).
    """

    def __init__(self, join, max_patches: int):
        self.join = join
        self.max_patches = max_patches
        self._joined_key = join.keys[0]
        self._pending: dict[int, int] = {}
        self._decoded: OrderedDict[int, dict] = OrderedDict()

    def before(self, rows: list[dict]) -> list[dict]:
        """A batch of rows going into the buffer (see the class docstring)."""
        patches = {row["patch_index"] for row in rows}
        if 2 * len(patches) <= len(rows):
            return self.join.join_rows(rows)
        pending = self._pending
        for row in rows:
            patch = row["patch_index"]
            pending[patch] = pending.get(patch, 0) + 1
        return rows

    def __call__(self, row: dict) -> dict:
        """The imagery of ``row``'s ``patch_index`` as ``{key: value}``, ``{}`` for a row that
        has it already: the update ``IterableDataset.map`` merges into the row."""
        if self._joined_key in row:
            return {}
        patch = row["patch_index"]
        left = self._pending.pop(patch, 0) - 1
        values = self._decoded.pop(patch, None)
        if values is None:
            values = self.join.read_one(patch)
        if left > 0:  # more rows of this patch are in the buffer
            self._pending[patch] = left
            self._decoded[patch] = values
            if len(self._decoded) > self.max_patches:
                self._decoded.popitem(last=False)
        return values


def generate_rows(
    pieces: list[dict],
    row_filter: dict | None = None,
    join=None,
    batch_size: int = 256,
    shuffle_join: ShuffleJoin | None = None,
    row_by_row: bool = False,
) -> Iterator[dict]:
    """Generator of ``from_generator``: the rows of ``pieces`` (``Piece`` fields as dicts) as
    dicts; with ``join`` (an ``ImageryJoin``) each batch of about ``batch_size`` rows gets its
    imagery (``ImageryJoin.join_rows``: one read per batch, one decode per patch), or with
    ``row_by_row`` each row as it is handed out (:func:`join_each`); with ``shuffle_join`` each
    batch goes through :meth:`ShuffleJoin.before` instead."""
    rf = RowFilter(row_filter or {})
    for fields in pieces:
        table = read_piece(Piece(**fields), rf)
        if join is None and shuffle_join is None:
            yield from table.to_pylist()
        elif row_by_row:
            yield from join_each(table.to_pylist(), join)
        else:
            step = shuffle_join.before if shuffle_join is not None else join.join_rows
            for start, stop in patch_batches(table["patch_index"], batch_size):
                yield from step(table.slice(start, stop - start).to_pylist())


def join_each(rows: Iterable[dict], join) -> Iterator[dict]:
    """``rows`` (dicts in file order, changed in place), each with the imagery of its patch
    decoded as it is handed out (``ImageryJoin.read_one``); consecutive rows of a patch share one
    decode. Nothing decoded waits for its row: each decode writes to memory the rows before it just
    let go of."""
    patch = values = None
    for row in rows:
        if values is None or row["patch_index"] != patch:
            patch = row["patch_index"]
            values = join.read_one(patch)
        row.update(values)
        yield row


def iterable_dataset(
    pieces: Sequence[Piece],
    row_filter: RowFilter | None = None,
    join=None,
    batch_size: int = 256,
    shuffle: tuple[int, int] | None = None,
):
    """A ``datasets.IterableDataset`` over ``pieces`` (one shard each).

    Examples are the rows as ``pyarrow.Table.to_pylist`` gives them (the ``TABLE_SCHEMA`` columns),
    with the keys of ``join`` (an ``ImageryJoin``) added when given. ``shuffle``: ``(seed,
    buffer_size)`` of ``IterableDataset.shuffle`` (pieces and rows; the buffer fed from one piece
    at a time). The imagery is read where the rows are made, in file order, about ``batch_size``
    rows per read (rows of a patch share one decode), before any buffer; except when the rows have
    fewer than two rows per patch (:func:`rows_per_patch`; one text per patch, as in ``captions``):
    then each row's patch is decoded as the row is handed out, in the generator without
    ``shuffle`` (:func:`join_each`), around the buffer with it (:class:`ShuffleJoin`: an
    ``IterableDataset.map`` after it, which costs a row about 3 µs where every row would have its
    imagery already). No ``features`` are declared: with them ``datasets`` re-encodes every
    example, which makes iteration about fifteen times slower.
    """
    from datasets import IterableDataset

    few = join is not None and rows_per_patch(pieces, row_filter) < 2
    around = ShuffleJoin(join, shuffle[1]) if shuffle and few else None
    ds = IterableDataset.from_generator(
        generate_rows,
        gen_kwargs={
            "pieces": [asdict(p) for p in pieces],
            "row_filter": dict(row_filter or {}),
            "join": None if around else join,
            "batch_size": batch_size,
            "shuffle_join": around,
            "row_by_row": few and around is None,
        },
    )
    if shuffle:
        seed, buffer_size = shuffle
        ds = ds.shuffle(seed=seed, buffer_size=buffer_size, max_buffer_input_shards=1)
    return ds.map(around) if around else ds
