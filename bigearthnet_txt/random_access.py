"""``BigEarthNetTxt``: a torchgeo-style map-style data set of a converted folder, for random access.

>>> ds = BigEarthNetTxt("bigearthnet_txt", "vqa", "train")             # doctest: +SKIP
>>> ds[0]["input"], ds[0]["s2_10m"].shape                               # doctest: +SKIP
>>> loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, num_workers=4,
...                                      collate_fn=Collator(...))     # doctest: +SKIP

The text rows of one config and split (``filters`` applied) are read once with
:func:`bigearthnet_txt.tables.read_tables` and written to an Arrow IPC file in ``cache_dir``
(default ``<data home>/arrow``; reused while the Parquet files are unchanged), which every process
then memory-maps. ``ds[i]`` converts one row straight from the Arrow buffers
(:class:`bigearthnet_txt.arrow_rows.ArrowRows`) and reads its patch with one
``ImageryStore.read``; ``ds.__getitems__(indices)`` (what ``torch.utils.data.DataLoader`` calls
for a batch) does one batched read for all rows. Examples equal ``load_dataset(...)[i]`` key for
key.

The class is a plain Python sequence (``__len__``/``__getitem__``/``__getitems__``), picklable
(workers re-map the cache file and reopen the store), so it needs no torch import and works in a
``DataLoader``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from bigearthnet_txt.arrow_rows import ArrowRows
from bigearthnet_txt.configs import config_files, config_tables
from bigearthnet_txt.filters import row_filter as make_row_filter
from bigearthnet_txt.imagery_join import ImageryJoin
from bigearthnet_txt.paths import data_home, resolve
from bigearthnet_txt.schema import SPLITS, TABLE_SCHEMA
from bigearthnet_txt.store import ImageryStore
from bigearthnet_txt.tables import read_tables

CHUNK_ROWS = 1 << 20  # rows per record batch of the cache file (keeps string offsets within int32)


class BigEarthNetTxt:
    """Rows of config ``config``, split ``split`` of a converted folder, with their imagery.

    ``root`` is a converted folder or a bare name in the data home
    (:func:`bigearthnet_txt.paths.resolve`; Hub repositories: use ``load_dataset``).
    ``imagery``/``resolution`` are those of :class:`bigearthnet_txt.imagery_join.ImageryJoin`
    (``imagery=()``: text only); the filters keep rows whose column is one of the given values
    (:func:`bigearthnet_txt.filters.row_filter`). The rows are kept in ``cache_dir`` (default
    ``<data home>/arrow``) as ``<fingerprint>.arrow`` (``ds.cache_file``), the fingerprint covering
    config, split, filters and the Parquet files' paths, sizes and mtimes. ``decode_threads``: see
    :class:`bigearthnet_txt.store.ImageryStore`.

    ``ds[i]`` (``-len(ds) <= i < len(ds)``) is a dict, in this key order:

    =====================================  =========================  =========================
    key                                    Python type / dtype        shape
    =====================================  =========================  =========================
    ``ID``                                 int
    ``s1_name`` ... ``climate_zone``       str (``latitude``,         the ``TABLE_SCHEMA`` text
                                           ``longitude``: float)      columns, in schema order
    ``patch_index``                        int | None
    ``options``                            list[str] | None           MCQ options
    ``answer_index``                       int | None
    ``answer_bool``                        bool | None
    ``box``                                list[float] | None         4 (x0, y0, x1, y1)
    ``point``                              list[float] | None         2
    ``ref``                                str | None
    ``uniqueness``, ``redundancy_weight``  float | None
    ``s2_10m``                             uint16                     ``[4, 120, 120]``
    ``s2_20m``                             uint16                     ``[6, 60, 60]``
    ``s2_60m``                             uint16                     ``[2, 20, 20]``
    ``s2`` (instead, ``resolution=120``)   uint16                     ``[12, 120, 120]``
    ``s1``                                 float32                    ``[2, 120, 120]`` VV, VH dB
    ``has_s1``                             bool                       False: ``s1`` is all NaN
    ``reference_map`` (if asked)           uint16                     ``[120, 120]``
    ``has_reference_map`` (if asked)       bool                       False: map is all 0
    =====================================  =========================  =========================

    ``ds.__getitems__(indices)`` returns the list ``[ds[i] for i in indices]`` with one store read.
    ``ds.table`` is the memory-mapped ``pyarrow.Table`` (``TABLE_SCHEMA``) of the rows.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        config: str = "all",
        split: str = "train",
        imagery: Sequence[str] = ("s2", "s1"),
        resolution: str | int = "native",
        countries: Iterable[str] | None = None,
        seasons: Iterable[str] | None = None,
        climate_zones: Iterable[str] | None = None,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        cache_dir: str | os.PathLike | None = None,
        decode_threads: int = 1,
    ):
        tasks = config_tables(config)
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        target = resolve(root)
        if isinstance(target, str):
            raise ValueError(  # noqa: TRY004
                f"{target!r} is a Hub repository; BigEarthNetTxt reads converted folders"
            )
        self.root, self.config, self.split = target, config, split
        self.rows = make_row_filter(countries, seasons, climate_zones, categories, types)
        store = ImageryStore.open(target, decode_threads=decode_threads)
        self.join = ImageryJoin(store, imagery, resolution) if imagery else None
        cache = Path(cache_dir).expanduser() if cache_dir is not None else data_home() / "arrow"
        self.cache_file = cache / f"{self._fingerprint()}.arrow"
        if not self.cache_file.exists():
            table = read_tables(target, [split], tasks=tasks, row_filter=self.rows.expression())
            cache.mkdir(parents=True, exist_ok=True)
            partial = self.cache_file.with_suffix(f".{os.getpid()}.tmp")
            with (
                pa.OSFile(str(partial), "wb") as sink,
                pa.ipc.new_file(sink, TABLE_SCHEMA) as writer,
            ):
                writer.write_table(table, max_chunksize=CHUNK_ROWS)
            os.replace(partial, self.cache_file)
        self._open()

    def _fingerprint(self) -> str:
        files = [
            (str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns)
            for p in config_files(self.root, self.config, self.split)
        ]
        key = json.dumps(
            [self.config, self.split, sorted(self.rows.items()), files, str(TABLE_SCHEMA)]
        )
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    def _open(self) -> None:
        source = pa.memory_map(str(self.cache_file), "r")
        self.table: pa.Table = pa.ipc.open_file(source).read_all()
        self._rows = ArrowRows(self.table)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for name in ("table", "_rows"):
            state.pop(name)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._open()

    def __repr__(self) -> str:
        imagery = self.join.imagery if self.join else ()
        return (
            f"BigEarthNetTxt({str(self.root)!r}, config={self.config!r}, split={self.split!r}, "
            f"rows={len(self)}, imagery={imagery})"
        )

    def __len__(self) -> int:
        return self.table.num_rows

    def _position(self, index: int) -> int:
        n = self.table.num_rows
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for {n} rows")
        return i

    def _text(self, i: int) -> dict:
        return self._rows.row(i)

    def __getitem__(self, index: int) -> dict:
        """Row ``index`` with its imagery (see the class docstring)."""
        row = self._text(self._position(index))
        if self.join is not None:
            for key, values in self.join.read([row["patch_index"]]).items():
                row[key] = values[0]
        return row

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        """``[self[i] for i in indices]`` with one batched store read."""
        rows = [self._text(self._position(i)) for i in indices]
        if self.join is not None and rows:
            wanted = [row["patch_index"] for row in rows]
            if any(i is None for i in wanted):
                raise ValueError(
                    "rows without patch_index have no imagery (converted without imagery?)"
                )
            unique, inverse = np.unique(np.asarray(wanted, dtype=np.int64), return_inverse=True)
            arrays = self.join.read(unique)
            handed = np.zeros(len(unique), dtype=bool)
            for row, u in zip(rows, inverse.tolist(), strict=True):
                for key, values in arrays.items():
                    value = values[u]
                    row[key] = value.copy() if handed[u] and hasattr(value, "copy") else value
                handed[u] = True
        return rows
