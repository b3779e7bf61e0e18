"""``JoinedDataset``: the ``datasets.Dataset`` subclass ``load_dataset`` returns, fast ``ds[i]``.

A map-style ``load_dataset`` result is a ``datasets.Dataset`` whose format is a transform
(:class:`bigearthnet_txt.imagery_join.ImageryJoin`) joining the imagery of each row's
``patch_index``. Through ``datasets``' own ``__getitem__`` a row costs about 90 µs of formatting
before the transform even runs (slicing the Arrow table, ``to_pydict``, the custom formatter), as
much as a whole LMDB sample. ``JoinedDataset`` answers ``ds[i]``, ``ds[[i, j, ...]]`` and
``ds.__getitems__([...])`` itself when the format is still such a join: the text straight from the
memory-mapped Arrow buffers (:class:`bigearthnet_txt.arrow_rows.ArrowRows`, through the indices
mapping of ``select``/``shuffle``/``filter``) and one batched store read. The result is the one
``datasets`` gives, key for key and value for value (tested); anything else (slices, column names,
another format, features that need decoding) goes through ``datasets`` unchanged.

Every ``datasets`` method that returns datasets (``map``, ``filter``, ``select``, ``shuffle``,
``sort``, ``shard``, ``train_test_split``, ``skip``, ``take``, ...,
``datasets.distributed.split_dataset_by_node``) returns a ``JoinedDataset`` again, with the imagery
still joined (the format is carried by ``datasets`` itself). ``with_format``/``set_format`` with
``"numpy"`` or ``"torch"`` keep it joined in the arrays' stored dtypes
(:mod:`bigearthnet_txt.tensor_format`); ``to_iterable_dataset`` gives a
:class:`~bigearthnet_txt.streamed_dataset.StreamedDataset` with the imagery joined after its
shuffle buffer. The subclass holds no state of its own
(the row getters live in a weak cache keyed by the dataset object), so it pickles, copies and
saves exactly like a ``datasets.Dataset``.
"""

from __future__ import annotations

import functools
import weakref

import numpy as np
from datasets import Dataset, DatasetDict

from bigearthnet_txt.arrow_rows import ArrowRows
from bigearthnet_txt.imagery_join import ImageryJoin
from bigearthnet_txt.lazy_imagery import LazyImageryJoin
from bigearthnet_txt.load_config import STREAM_BATCH_SIZE
from bigearthnet_txt.tensor_format import FORMAT_KINDS, TensorJoin

_ROWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # dataset -> (key, rows, indices)
# dataset -> (its features object, whether the fast path applies to them: a patch_index column and
# no feature that decodes values), checked once per features object
_FAST: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# ``Dataset`` methods whose ``Dataset`` / ``DatasetDict`` results keep the subclass.
RETURNING_DATASETS = (
    "map", "filter", "select", "shuffle", "sort", "shard", "train_test_split", "skip", "take",
    "repeat", "flatten_indices", "rename_column", "rename_columns", "remove_columns",
    "select_columns", "add_column", "cast", "cast_column", "with_format", "with_transform",
    "flatten", "class_encode_column", "add_item", "batch",
)  # fmt: skip


def _promote(result):
    """``result`` with every plain ``Dataset`` in it turned into a ``JoinedDataset``."""
    if type(result) is Dataset:
        result.__class__ = JoinedDataset
    elif isinstance(result, DatasetDict):
        for value in result.values():
            _promote(value)
    return result


class JoinedDataset(Dataset):
    """A ``datasets.Dataset`` with imagery joined and fast integer indexing (module docstring)."""

    @classmethod
    def of(cls, dataset: Dataset) -> JoinedDataset:
        """``dataset`` itself, as a ``JoinedDataset``."""
        return _promote(dataset)

    def _join(self) -> ImageryJoin | None:
        """The imagery join of the current format, when the fast path applies."""
        if self._format_type != "custom" or self._format_columns is not None:
            return None
        transform = (self._format_kwargs or {}).get("transform")
        if not isinstance(transform, ImageryJoin) or transform.share_rows:
            return None
        features = self._info.features
        checked = _FAST.get(self)
        if checked is None or checked[0] is not features:
            fast = "patch_index" in features and not any(
                getattr(f, "decode", False) for f in features.values()
            )
            checked = _FAST[self] = (features, fast)
        return transform if checked[1] else None

    def _rows(self) -> tuple[ArrowRows, np.ndarray | None]:
        """Row getters of the table and the indices mapping, made once per table and mapping."""
        key = (id(self._data), id(self._indices))
        cached = _ROWS.get(self)
        if cached is None or cached[0] != key:
            indices = None
            if self._indices is not None:
                indices = self._indices.column(0).to_numpy().astype(np.int64)
            cached = (key, ArrowRows(self._data.table), indices)
            _ROWS[self] = cached
        return cached[1], cached[2]

    def _positions(self, keys) -> list[int]:
        n = len(self)
        out = []
        for k in keys:
            i = int(k)
            if not -n <= i < n:
                raise IndexError(f"Invalid key: {k} is out of bounds for size {n}")
            out.append(i + n if i < 0 else i)
        return out

    def _texts(self, positions: list[int]) -> list[dict]:
        rows, indices = self._rows()
        if indices is not None:
            return [rows.row(int(indices[i])) for i in positions]
        return [rows.row(i) for i in positions]

    @staticmethod
    def _is_row_key(key) -> bool:
        return isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_))

    @staticmethod
    def _is_rows_key(key) -> bool:
        if isinstance(key, np.ndarray):
            return key.ndim == 1 and key.dtype.kind in "iu"
        return isinstance(key, (list, tuple)) and all(JoinedDataset._is_row_key(k) for k in key)

    def __getitem__(self, key):
        join = self._join() if not isinstance(key, (str, slice)) else None
        if join is not None and self._is_row_key(key):
            (row,) = self._texts(self._positions((key,)))
            for name, values in join.read([row["patch_index"]]).items():
                row[name] = values[0]
            return row
        if join is not None and self._is_rows_key(key) and len(key):
            texts = self._texts(self._positions(key))
            batch = {name: [t[name] for t in texts] for name in texts[0]}
            return {**batch, **join.read(batch["patch_index"])}
        return super().__getitem__(key)

    def set_format(self, type=None, columns=None, output_all_columns=False, **format_kwargs):
        """``datasets``' ``set_format`` (and so ``with_format``, ``formatted_as``), except that
        ``"python"``, ``"numpy"`` and ``"torch"`` keep the imagery joined, in its stored dtypes
        (:mod:`bigearthnet_txt.tensor_format`); ``columns`` may then name imagery keys too.
        ``None`` (``reset_format``) and the table formats (``"arrow"``, ``"pandas"``, ...) give
        the text columns alone, as ``datasets`` does."""
        join = self._imagery_join()
        if join is None or type not in FORMAT_KINDS:
            return super().set_format(type, columns, output_all_columns, **format_kwargs)
        if isinstance(columns, str):
            columns = [columns]
        known = [*self._data.column_names, *join.keys]
        missing = [c for c in columns or () if c not in known]
        if missing:
            raise ValueError(f"Columns {missing} not in the dataset. Current columns: {known}")
        if FORMAT_KINDS[type] == "python" and columns is None:  # the plain join: fast ds[i]
            return super().set_format("custom", transform=join)
        features = self._info.features
        transform = TensorJoin(join, type, features, columns, output_all_columns, **format_kwargs)
        return super().set_format("custom", transform=transform)

    def map(self, *args, **kwargs):
        """``Dataset.map``, the result a ``JoinedDataset`` with the imagery still joined; a batched
        function gets batches whose imagery is read only when it looks an imagery key up
        (:mod:`bigearthnet_txt.lazy_imagery`), so one over text decodes nothing."""
        join = self._join()
        if join is None:
            return _promote(Dataset.map(self, *args, **kwargs))
        lazy = Dataset.with_format(self, "custom", transform=LazyImageryJoin(join))
        result = Dataset.map(lazy, *args, **kwargs)
        result.set_format("custom", transform=join)
        return _promote(result)

    def to_iterable_dataset(self, num_shards: int | None = 1):
        """``datasets``' ``to_iterable_dataset`` (which refuses a dataset with a transform), with
        the imagery still joined and the format kept: a
        :class:`~bigearthnet_txt.streamed_dataset.StreamedDataset` whose ``shuffle`` shuffles the
        text rows (``num_shards`` shards and a buffer) before the imagery is joined, and which
        ``split_by_node`` splits by text rows before the join (no ``drop_remainder``)."""
        join = self._imagery_join()
        if join is None:
            return super().to_iterable_dataset(num_shards)
        transform = self._format_kwargs["transform"]
        kind = transform.tensors.kind if isinstance(transform, TensorJoin) else "python"
        return _joined_iterable(self.with_format(None), join, num_shards).with_format(kind)

    def _imagery_join(self) -> ImageryJoin | None:
        """The imagery join of the current format (python or tensors), None without one."""
        transform = (self._format_kwargs or {}).get("transform")
        if isinstance(transform, TensorJoin):
            transform = transform.join
        return transform if isinstance(transform, ImageryJoin) else None

    def __getitems__(self, keys: list) -> list:
        """``[ds[k] for k in keys]`` with one store read (what a ``DataLoader`` batch calls)."""
        join = self._join()
        if join is None or not self._is_rows_key(keys) or not len(keys):
            return super().__getitems__(keys)
        texts = self._texts(self._positions(keys))
        arrays = join.read([t["patch_index"] for t in texts])
        for j, row in enumerate(texts):
            for name, values in arrays.items():
                row[name] = values[j]
        return texts


def _joined_iterable(text: Dataset, join: ImageryJoin, num_shards: int | None,
                     shuffle_seed: int | None = None, buffer_size: int = 1000, rank: int = 0,
                     world_size: int = 1, drop_remainder: bool = False):  # fmt: skip
    """``text`` (a map-style dataset without imagery) as a ``StreamedDataset`` of ``num_shards``
    shards, shuffled (``shuffle_seed``, ``buffer_size``) and split (``rank`` of ``world_size``)
    by text rows, then joined by ``join`` in batches (:meth:`JoinedDataset.to_iterable_dataset`);
    it reloads with other such options."""
    from datasets.distributed import split_dataset_by_node

    from bigearthnet_txt.streamed_dataset import StreamedDataset

    if drop_remainder:
        raise ValueError("drop_remainder is not supported for to_iterable_dataset's result")
    rows = Dataset.to_iterable_dataset(text, num_shards=num_shards)
    if shuffle_seed is not None:
        rows = rows.shuffle(seed=shuffle_seed, buffer_size=buffer_size)
    if world_size > 1:
        rows = split_dataset_by_node(rows, rank=rank, world_size=world_size)
    row_join = ImageryJoin(join.store, join.imagery, join.resolution, share_rows=True)
    joined = rows.map(row_join, batched=True, batch_size=STREAM_BATCH_SIZE)
    return StreamedDataset.of(joined, functools.partial(_joined_iterable, text, join, num_shards))


def _returning_subclass(name: str):
    method = getattr(Dataset, name)

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        return _promote(method(self, *args, **kwargs))

    return wrapper


for _name in set(RETURNING_DATASETS) - {"map"}:  # map: JoinedDataset.map
    if hasattr(Dataset, _name):
        setattr(JoinedDataset, _name, _returning_subclass(_name))
