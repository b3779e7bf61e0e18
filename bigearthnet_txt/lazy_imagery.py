"""Batches whose imagery is read only when asked for: what ``JoinedDataset.map`` / ``filter`` hand
a batched function.

``datasets`` gives a batched ``map`` function the batch its format makes, as it is. With the plain
join that batch holds every row's imagery, so a function over text alone (``ds.map(tokenize,
batched=True)``) would decode every patch of the data set for nothing. Under ``map`` (and
``filter``, which maps) a :class:`~bigearthnet_txt.joined_dataset.JoinedDataset` formats batches
with :class:`LazyImageryJoin` instead: a :class:`LazyImageryBatch` lists the imagery keys with the
text columns and reads them, all in one ``ImageryJoin.read``, the first time one is asked for.
A row-at-a-time function gets each row with its imagery, as before (``datasets`` takes every
value of the batch to make a row).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

from bigearthnet_txt.imagery_join import ImageryJoin


class LazyImageryBatch(MutableMapping):
    """``{column: values}`` of ``batch`` plus ``join.keys``: the imagery of its ``patch_index``,
    read (stacked arrays, as ``ImageryJoin.read`` gives) when one of them is first looked up; one
    set or deleted before that is never read. A batch without ``patch_index`` has no imagery
    keys."""

    def __init__(self, batch, join: ImageryJoin):
        self._data = dict(batch)
        self._join = join
        self._unread = (
            [k for k in join.keys if k not in self._data] if "patch_index" in batch else []
        )

    def _read(self) -> None:
        unread, self._unread = self._unread, []
        values = self._join.read(self._data["patch_index"])
        self._data.update({key: values[key] for key in unread})

    def __getitem__(self, key):
        if key in self._unread:
            self._read()
        return self._data[key]

    def __contains__(self, key) -> bool:
        return key in self._data or key in self._unread

    def __iter__(self) -> Iterator:
        yield from list(self._data)
        yield from list(self._unread)

    def __len__(self) -> int:
        return len(self._data) + len(self._unread)

    def __setitem__(self, key, value) -> None:
        if key in self._unread:
            self._unread.remove(key)
        self._data[key] = value

    def __delitem__(self, key) -> None:
        if key in self._unread:
            self._unread.remove(key)
        else:
            del self._data[key]

    def __repr__(self) -> str:
        return f"LazyImageryBatch({list(self._data)} + unread {self._unread})"


class LazyImageryJoin:
    """The custom transform that makes :class:`LazyImageryBatch` es of ``join`` (picklable)."""

    def __init__(self, join: ImageryJoin):
        self.join = join

    def __call__(self, batch) -> LazyImageryBatch:
        return LazyImageryBatch(batch, self.join)
