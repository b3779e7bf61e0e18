"""Read side of the imagery store: ``ImageryStore`` over ``DIR/imagery.zarr`` + ``patches.parquet``.

The store (written by ``bigearthnet-txt convert``) holds one leading patch axis shared by every
array (``bigearthnet_txt.schema.IMAGERY_ARRAYS``)::

    s2_10m         uint16  [N, 4, 120, 120]  B02 B03 B04 B08
    s2_20m         uint16  [N, 6, 60, 60]    B05 B06 B07 B8A B11 B12
    s2_60m         uint16  [N, 2, 20, 20]    B01 B09
    s1             float32 [N, 2, 120, 120]  VV VH (dB; NaN where a patch has no S1)
    reference_map  uint16  [N, 120, 120]     CORINE level-3 codes (optional)

Row ``patch_index`` of every array is the patch of that ``patch_index`` in the patch table; splits
are contiguous row ranges (``split_range``); rows between splits are padding and never listed.

API::

    store = ImageryStore("DIR")                  # or "DIR/imagery.zarr"; opens lazily, picklable
    store = ImageryStore("DIR", decode_threads=2)  # batches decoded on two threads
    store = ImageryStore("hf://datasets/NS/NAME")  # any fsspec URL of such a folder
    store = ImageryStore("hf://datasets/NS/NAME@REV", storage_options={"token": ...})
    store = ImageryStore.open("DIR")             # the process's shared store of a local folder
    store.patches                                # pyarrow.Table (PATCH_SCHEMA), one row per patch
    store.patches_df()                           # the same as a pandas DataFrame
    store.attrs                                  # STORE_ATTRS_KEY dict (sources, codecs, settings)
    store.arrays                                 # ("s2_10m", "s2_20m", "s2_60m", "s1", ...)
    store.shape("s2_10m"), store.dtype("s1")     # (N, 4, 120, 120), float32: metadata read once
    store.remote                                 # True for a URL (read through fsspec)
    store.band_names                             # {"s2_10m": ("B02", ...), ...}
    store.stats                                  # {"B02": {"mean": .., "std": .., "count": ..}}
    store.split_range("train")                   # (start, stop); store.split_ranges: all splits
    store.split_indices("train")                 # np.ndarray[int64] patch_index of a split
    store.indices_of(["S2A_..._75_43"])          # np.ndarray[int64] of patch_index
    store.patch_flags("has_s1")                  # np.ndarray[bool] by patch_index (patch table)
    batch = store.read([5, 1, 9], arrays=("s2_10m", "s1"))   # {"s2_10m": [3,4,120,120], ...}
    rows = store.read_each([5, 1, 9], arrays=("s1",))  # {"s1": [[2,120,120]] * 3}, own memory
    s2 = store.read_s2_120([5, 1, 9])            # uint16 [3, 12, 120, 120] in S2_BANDS order
    s2_to_120(batch)                             # the same from an already read batch

``read`` returns rows in the requested order (duplicates allowed): each wanted one-patch chunk is
decoded straight into its place in the result (a repeated row once, then copied), opening each
shard file once (``bigearthnet_txt.shards``; zarr-python for layouts that module does not handle).
A store whose conversion has not finished is refused (``ValueError``).

Local shard files are memory-mapped (read-only, kept open); a URL (``hf://``, ``https://``,
``memory://``, ...) is read through fsspec: the ``zarr.json`` files once at open, then per shard
one range read of its index (kept) and one per run of adjacent wanted chunks, and
``patches.parquet`` when first needed. Metadata of every
array (shape, dtype, codecs, attributes) is read once per process, so ``read`` does no zarr work.

``ImageryStore.open`` (what ``load_dataset`` and ``BigEarthNetTxt`` use) hands out one store per
local folder and process, so a second dataset over the same folder (another config or split, a new
streaming pass) starts with the patch table, flags, shard indexes and mappings the first one read,
which a fresh store would read again. A folder whose ``imagery.zarr/zarr.json`` or
``patches.parquet`` was rewritten (a new conversion) gets a new store.
"""

from __future__ import annotations

import functools
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bigearthnet_txt import recycled
from bigearthnet_txt.mapped_files import file_version
from bigearthnet_txt.schema import (
    IMAGERY_ARRAYS,
    IMAGERY_STORE,
    PATCH_TABLE,
    S2_ARRAYS,
    S2_BANDS,
    STORE_ATTRS_KEY,
)
from bigearthnet_txt.shards import ShardLayout

S2_ARRAY_NAMES: tuple[str, ...] = tuple(a.name for a in S2_ARRAYS)
MAX_SHARED_STORES = 16  # ImageryStore.open's stores kept per process, least recently used dropped


def s2_to_120(batch: dict[str, np.ndarray]) -> np.ndarray:
    """Stack ``s2_10m``/``s2_20m``/``s2_60m`` of a batch into uint16 ``[B, 12, 120, 120]`` in
    ``S2_BANDS`` order, upsampling 20 m (×2) and 60 m (×6) by nearest neighbour (pixel repeat)."""
    first = batch[S2_ARRAY_NAMES[0]]
    out = recycled.empty((first.shape[0], len(S2_BANDS), 120, 120), first.dtype)
    for array in S2_ARRAYS:
        factor = 120 // array.size
        values = batch[array.name]
        if factor > 1:
            values = values.repeat(factor, axis=-2).repeat(factor, axis=-1)
        for b, band in enumerate(array.bands):
            out[:, S2_BANDS.index(band)] = values[:, b]
    return out


def is_url(path: Path | str) -> bool:
    """Whether ``path`` is an fsspec URL (``proto://...``) rather than a local path."""
    return isinstance(path, str) and "://" in path and not path.startswith("file://")


class ImageryStore:
    """Lazy reader of one converted imagery store (see the module docstring for the API).

    ``path``: a local folder (or its ``imagery.zarr``) or an fsspec URL of one; ``storage_options``
    go to the URL's filesystem (e.g. ``{"token": ..., "endpoint": ...}`` for ``hf://``);
    ``decode_threads > 1`` decodes the chunks of a local shard on that many threads (the Blosc and
    zstd decoders release the GIL), which speeds up batches in one process or DataLoader worker.
    """

    def __init__(
        self, path: Path | str, storage_options: dict | None = None, decode_threads: int = 1
    ):
        self.storage_options = dict(storage_options or {})
        self.decode_threads = int(decode_threads)
        self._executor = None
        if is_url(path):
            url = str(path).rstrip("/")
            self.root: Path | str = (
                url[: -len(IMAGERY_STORE) - 1] if url.endswith("/" + IMAGERY_STORE) else url
            )
            self.zarr_path: Path | str = f"{self.root}/{IMAGERY_STORE}"
        else:
            path = Path(str(path).removeprefix("file://"))
            self.root = path.parent if path.name == IMAGERY_STORE else path
            self.zarr_path = self.root / IMAGERY_STORE
        self._fs = None
        self._fs_path: str | None = None
        self._attrs: dict | None = None
        self._metas: dict[str, dict] | None = None
        self._group = None
        self._patches: pa.Table | None = None
        self._index_of: dict[str, int] | None = None
        self._flags: dict[str, np.ndarray] = {}
        self._layouts: dict[str, ShardLayout | None] = {}
        self._row_readers: dict[tuple[str, ...], tuple[int, list]] = {}

    @classmethod
    def open(
        cls, path: Path | str, storage_options: dict | None = None, decode_threads: int = 1
    ) -> ImageryStore:
        """The process's shared store of local folder ``path`` with ``decode_threads`` (see the
        module docstring), made on first use; a URL gets a store of its own."""
        store = cls(path, storage_options, decode_threads)
        if store.remote:
            return store
        key = (
            str(store.zarr_path.resolve()),
            store.decode_threads,
            file_version(store.zarr_path / "zarr.json"),
            file_version(store.root / PATCH_TABLE),
        )
        with _SHARED_LOCK:
            shared = _SHARED.setdefault(key, store)
            _SHARED.move_to_end(key)
            while len(_SHARED) > MAX_SHARED_STORES:
                _SHARED.popitem(last=False)
        return shared

    def __getstate__(self) -> dict:
        return {
            "zarr_path": self.zarr_path,
            "storage_options": self.storage_options,
            "decode_threads": self.decode_threads,
        }

    def __setstate__(self, state: dict) -> None:
        self.__init__(
            state["zarr_path"], state.get("storage_options"), state.get("decode_threads", 1)
        )

    def __repr__(self) -> str:
        return f"ImageryStore({str(self.root)!r})"

    @property
    def remote(self) -> bool:
        """Whether the store is read through fsspec (a URL) rather than from a local folder."""
        return isinstance(self.zarr_path, str)

    # -- lazy handles -----------------------------------------------------------------------------

    @property
    def fs(self):
        """The fsspec filesystem of a URL store (None for a local folder), made on first use."""
        if self.remote and self._fs is None:
            from fsspec.core import url_to_fs

            self._fs, self._fs_path = url_to_fs(self.zarr_path, **self.storage_options)
            self._fs_path = self._fs_path.rstrip("/")
        return self._fs

    def _read_json(self, key: str) -> dict:
        """``imagery.zarr/<key>`` parsed; FileNotFoundError when absent."""
        if self.remote:
            fs = self.fs
            return json.loads(fs.cat_file(f"{self._fs_path}/{key}"))
        return json.loads((self.zarr_path / key).read_text())

    def _open(self) -> None:
        """Read the group's and every array's ``zarr.json`` once (refusing an unfinished store)."""
        try:
            group = self._read_json("zarr.json")
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.zarr_path}: no imagery store here") from None
        attrs = group.get("attributes", {}).get(STORE_ATTRS_KEY) or {}
        if not attrs.get("complete"):
            raise ValueError(
                f"{self.zarr_path}: conversion not finished (rerun the convert command)"
            )
        metas = {}
        for name in IMAGERY_ARRAYS:
            try:
                meta = self._read_json(f"{name}/zarr.json")
            except FileNotFoundError:
                continue
            if meta.get("node_type") == "array":
                metas[name] = meta
        self._attrs, self._metas = attrs, metas

    @property
    def metas(self) -> dict[str, dict]:
        """``{array: parsed zarr.json}`` of the arrays present, read once per process."""
        if self._metas is None:
            self._open()
        return self._metas

    @property
    def group(self):
        """The opened ``zarr.Group`` (read-only), opened on first use in each process; ``read`` only
        uses it for array layouts that :mod:`bigearthnet_txt.shards` does not handle."""
        if self._group is None:
            import zarr

            if self._metas is None:
                self._open()  # refuses a missing or unfinished store
            if self.remote:
                self._group = zarr.open_group(
                    self.zarr_path, mode="r", storage_options=self.storage_options or None
                )
            else:
                self._group = zarr.open_group(self.zarr_path, mode="r")
        return self._group

    @property
    def attrs(self) -> dict:
        """The store's ``STORE_ATTRS_KEY`` attributes (bands, stats, sources, codecs, splits)."""
        if self._attrs is None:
            self._open()
        return dict(self._attrs)

    def shape(self, name: str) -> tuple[int, ...]:
        """Shape of array ``name``, e.g. ``(N, 4, 120, 120)`` for ``s2_10m``."""
        return tuple(self.metas[name]["shape"])

    def dtype(self, name: str) -> np.dtype:
        """Stored dtype of array ``name`` (uint16 S2 / reference map, float32 S1)."""
        return np.dtype(self.metas[name]["data_type"])

    @property
    def patches(self) -> pa.Table:
        """The patch table (``PATCH_SCHEMA``), sorted by ``patch_index``."""
        if self._patches is None:
            if self.remote:
                with self.fs.open(
                    f"{self._fs_path[: -len(IMAGERY_STORE) - 1]}/{PATCH_TABLE}", "rb"
                ) as f:
                    self._patches = pq.read_table(f)
            else:
                self._patches = pq.read_table(self.root / PATCH_TABLE)
        return self._patches

    def patches_df(self):
        """The patch table as a pandas DataFrame."""
        return self.patches.to_pandas()

    # -- description ------------------------------------------------------------------------------

    @property
    def arrays(self) -> tuple[str, ...]:
        """Names of the arrays present, in ``IMAGERY_ARRAYS`` order."""
        return tuple(self.metas)

    @property
    def band_names(self) -> dict[str, tuple[str, ...]]:
        """``{array: band names}`` as recorded in each array's attributes."""
        return {
            name: tuple(meta.get("attributes", {}).get("bands", ()))
            for name, meta in self.metas.items()
        }

    @property
    def stats(self) -> dict[str, dict[str, float]]:
        """Per-band train mean/std: ``{band: {"mean", "std", "count"}}`` (S1 in dB)."""
        return dict(self.attrs.get("stats", {}))

    @property
    def split_ranges(self) -> dict[str, tuple[int, int]]:
        return {k: (int(v[0]), int(v[1])) for k, v in self.attrs["split_ranges"].items()}

    def split_range(self, split: str) -> tuple[int, int]:
        """``(start, stop)`` rows of a split (a half-open range; padding rows excluded)."""
        ranges = self.split_ranges
        if split not in ranges:
            raise KeyError(f"{self.root}: no split {split!r} (have {sorted(ranges)})")
        return ranges[split]

    def __len__(self) -> int:
        return self.patches.num_rows

    def indices_of(self, patch_ids: Iterable[str]) -> np.ndarray:
        """``patch_index`` of each ``patch_id``; KeyError naming an unknown one."""
        if self._index_of is None:
            self._index_of = dict(
                zip(
                    self.patches["patch_id"].to_pylist(),
                    self.patches["patch_index"].to_pylist(),
                    strict=True,
                )
            )
        try:
            return np.array([self._index_of[p] for p in patch_ids], dtype=np.int64)
        except KeyError as err:
            raise KeyError(f"{self.root}: patch {err.args[0]} is not in the store") from None

    def patch_flags(self, column: str) -> np.ndarray:
        """bool ``[N]``: the patch table's ``column`` (``has_s1``, ``has_s2``,
        ``has_reference_map``) by ``patch_index`` (False for rows no patch occupies), read once."""
        if column not in self._flags:
            table = self.patches
            index = table["patch_index"].to_numpy().astype(np.int64)
            flags = np.zeros(int(index.max()) + 1 if index.size else 0, dtype=bool)
            flags[index] = table[column].fill_null(False).to_numpy(zero_copy_only=False)
            self._flags[column] = flags
        return self._flags[column]

    def split_indices(self, split: str) -> np.ndarray:
        """``patch_index`` of the patches of one split (ascending)."""
        table = self.patches.filter(pc.equal(self.patches["split"], split))
        return table["patch_index"].to_numpy().astype(np.int64)

    # -- reading ----------------------------------------------------------------------------------

    def read(
        self, indices: Sequence[int] | np.ndarray, arrays: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Read rows ``indices`` (any order, repeats allowed) of ``arrays`` (default: all present).

        Returns ``{array: ndarray[len(indices), ...]}`` in the requested order.
        """
        return self._read(indices, arrays, separate=False)

    def read_each(
        self, indices: Sequence[int] | np.ndarray, arrays: Sequence[str] | None = None
    ) -> dict[str, list[np.ndarray]]:
        """Like :meth:`read`, but ``{array: [ndarray[...], ...]}``: each row decoded straight into
        its own read-only array, so a row kept alive (e.g. in a shuffle buffer) holds only its own
        memory."""
        return self._read(indices, arrays, separate=True)

    def read_one(self, index: int, arrays: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Row ``index`` of ``arrays`` as ``{array: ndarray}``: one row of :meth:`read_each`
        (read-only, each in its own memory), with less work per call (the arrays' one-row readers
        and their common length looked up once per ``arrays``)."""
        names = tuple(arrays) if arrays is not None else self.arrays
        readers = self._row_readers.get(names)
        if readers is None:
            readers = self._row_readers[names] = self._make_row_readers(names)
        n, reads = readers
        if not 0 <= index < n:
            for name in names:
                self._checked_layout(name, index, index)  # the IndexError naming the array
        return {name: read(index) for name, read in reads}

    def _make_row_readers(self, names: tuple[str, ...]) -> tuple[int, list]:
        """``(rows every array of names has, [(name, read one row as a read-only array)])``."""
        reads = []
        for name in names:
            layout = self._checked_layout(name, 0, -1)
            if layout is not None:
                reads.append((name, layout.read_row))
            else:
                reads.append((name, functools.partial(self._read_zarr_row, name)))
        return min((self.metas[name]["shape"][0] for name in names), default=0), reads

    def _read_zarr_row(self, name: str, index: int) -> np.ndarray:
        return _read_only(self._read_zarr(name, np.array([index]))[0].copy())

    def _read(self, indices, arrays, separate: bool) -> dict:
        names = tuple(arrays) if arrays is not None else self.arrays
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 1:
            lo = hi = int(idx[0])
        else:
            lo, hi = (int(idx.min()), int(idx.max())) if idx.size else (0, -1)
        out: dict = {}
        for name in names:
            layout = self._checked_layout(name, lo, hi)
            if layout is not None:
                read = layout.read_each if separate else layout.read_rows
                out[name] = read(idx, self._pool())
            else:
                unique, inverse = np.unique(idx, return_inverse=True)
                values = self._read_zarr(name, unique)[inverse]
                out[name] = [_read_only(v.copy()) for v in values] if separate else values
        return out

    def _checked_layout(self, name: str, lo: int, hi: int) -> ShardLayout | None:
        """The shard layout of array ``name`` (None: read through zarr-python); KeyError for an
        array the store does not have, IndexError unless rows ``lo..hi`` are in range."""
        metas = self.metas
        if name not in metas:
            if name not in IMAGERY_ARRAYS:
                raise KeyError(f"unknown array {name!r}; expected one of {tuple(IMAGERY_ARRAYS)}")
            raise KeyError(
                f"{self.zarr_path}: no array {name!r} in this store (have {self.arrays})"
            )
        n = metas[name]["shape"][0]
        if lo < 0 or hi >= n:
            raise IndexError(f"{self.zarr_path}/{name}: patch index out of range [0, {n})")
        return self._layouts[name] if name in self._layouts else self._layout(name)

    def _pool(self):
        """The decoding thread pool (``decode_threads > 1``, made on first use), else None."""
        if self.decode_threads <= 1:
            return None
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(self.decode_threads, "imagery-decode")
        return self._executor

    def _read_zarr(self, name: str, unique: np.ndarray) -> np.ndarray:
        """Rows ``unique`` (sorted, unique) of ``name`` through zarr-python."""
        z = self.group[name]
        if unique.size == 0:
            return np.empty((0, *z.shape[1:]), dtype=z.dtype)
        if unique.size == unique[-1] - unique[0] + 1:
            return z[int(unique[0]) : int(unique[-1]) + 1]
        return z.get_orthogonal_selection((unique,) + (slice(None),) * (z.ndim - 1))

    def _layout(self, name: str) -> ShardLayout | None:
        if name not in self._layouts:
            if self.remote:
                layout = ShardLayout.load(
                    f"{self._fs_path}/{name}", fs=self.fs, meta=self.metas[name]
                )
            else:
                layout = ShardLayout.load(self.zarr_path / name, meta=self.metas[name])
            self._layouts[name] = layout
        return self._layouts[name]

    def read_s2_120(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """uint16 ``[len(indices), 12, 120, 120]`` S2 in ``S2_BANDS`` order (nearest upsampling)."""
        return s2_to_120(self.read(indices, S2_ARRAY_NAMES))


_SHARED: OrderedDict[tuple, ImageryStore] = OrderedDict()
_SHARED_LOCK = threading.Lock()


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array
