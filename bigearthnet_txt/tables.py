"""Read the converted annotation tables ``DIR/data/<task>/<split>-NNNNN.parquet``.

>>> table = read_tables("DIR", splits=["bench"], columns=["ID", "type", "output"])  # doctest: +SKIP

Rows come task by task (``TABLE_TASKS`` order), split by split, file by file, in stored order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bigearthnet_txt.schema import DATA_DIR, SPLITS, TABLE_SCHEMA, TABLE_TASKS, shard_glob


def table_files(
    data_dir: Path | str, tasks: Iterable[str] | None = None, splits: Iterable[str] | None = None
) -> list[Path]:
    """The Parquet shards of the given tasks and splits (default: all), sorted within each."""
    root = Path(data_dir)
    if not (root / DATA_DIR).is_dir():
        raise FileNotFoundError(f"{root}: no converted annotation tables (missing {DATA_DIR}/)")
    splits = list(splits) if splits is not None else list(SPLITS)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; expected one of {SPLITS}")
    files: list[Path] = []
    for task in tasks if tasks is not None else TABLE_TASKS:
        for split in splits:
            files.extend(sorted(root.glob(shard_glob(task, split))))
    return files


def read_tables(
    data_dir: Path | str,
    splits: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    tasks: Iterable[str] | None = None,
    row_filter: pc.Expression | None = None,
) -> pa.Table:
    """Rows of the given tasks and splits as one table (``TABLE_SCHEMA``, or ``columns`` of it).

    ``row_filter`` (a ``pyarrow.compute`` expression, e.g. ``pc.field("ID") == 5``) is applied
    while reading, file by file, so that a look-up in the full release stays cheap in memory.
    """
    names = list(columns) if columns is not None else list(TABLE_SCHEMA.names)
    schema = pa.schema([TABLE_SCHEMA.field(n) for n in names])
    parts = []
    for path in table_files(data_dir, tasks, splits):
        part = pq.read_table(path, columns=names, filters=row_filter)
        parts.append(part.select(names).cast(schema))
    return pa.concat_tables(parts) if parts else schema.empty_table()
