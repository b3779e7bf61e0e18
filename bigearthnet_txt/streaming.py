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

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bigearthnet_txt.filters import RowFilter


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


def generate_rows(
    pieces: list[dict], row_filter: dict | None = None, join=None, batch_size: int = 256
) -> Iterator[dict]:
    """Generator of ``from_generator``: the rows of ``pieces`` (``Piece`` fields as dicts) as
    dicts; with ``join`` (an ``ImageryJoin``) each batch of about ``batch_size`` rows gets its
    imagery (``ImageryJoin.join_rows``: one read per batch, one decode per patch)."""
    rf = RowFilter(row_filter or {})
    for fields in pieces:
        table = read_piece(Piece(**fields), rf)
        if join is None:
            yield from table.to_pylist()
            continue
        for start, stop in patch_batches(table["patch_index"], batch_size):
            yield from join.join_rows(table.slice(start, stop - start).to_pylist())


def iterable_dataset(
    pieces: Sequence[Piece], row_filter: RowFilter | None = None, join=None, batch_size: int = 256
):
    """A ``datasets.IterableDataset`` over ``pieces`` (one shard each).

    Examples are the rows as ``pyarrow.Table.to_pylist`` gives them (the ``TABLE_SCHEMA`` columns),
    with the keys of ``join`` (an ``ImageryJoin``) added when given: the imagery is read where the
    rows are made, in file order (so rows of a patch share one decode), before any shuffle buffer;
    each row then holds its own patch's arrays (about 0.28 MB at native resolution), which a
    shuffle buffer of ``buffer_size`` rows keeps in memory. No ``features`` are declared: with them
    ``datasets`` re-encodes every example, which makes iteration about fifteen times slower.
    """
    from datasets import IterableDataset

    return IterableDataset.from_generator(
        generate_rows,
        gen_kwargs={
            "pieces": [asdict(p) for p in pieces],
            "row_filter": dict(row_filter or {}),
            "join": join,
            "batch_size": batch_size,
        },
    )
