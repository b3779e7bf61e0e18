"""``StreamedDataset``: the ``datasets.IterableDataset`` that ``load_dataset(..., streaming=True)``
returns, which knows how it was loaded.

``datasets``' own ``IterableDataset.shuffle`` puts its buffer after everything the dataset already
does, so on a streamed BigEarthNet.txt dataset it would buffer rows that hold their decoded imagery:
about 0.28 MB per row (280 MB for the default 1,000 rows), every patch decoded into memory that
goes cold before the row leaves: with one text per patch several times slower per row than
``load_dataset(..., shuffle_seed=...)`` (``bench/results/reads.md`` measures both).
``StreamedDataset`` loads itself again instead:

* ``ds.shuffle(seed=None, generator=None, buffer_size=1000)`` is
  ``load_dataset(..., shuffle_seed=seed, buffer_size=buffer_size)`` with every other option kept:
  pieces shuffled and a buffer of text rows, the imagery joined where it costs least
  (:mod:`bigearthnet_txt.streaming`). ``seed=None`` draws a seed from ``generator`` (a copy, so
  ``generator`` itself does not move) or, without one, from fresh entropy, as ``datasets`` does.
  A second ``shuffle`` replaces the first (``datasets`` would add a second buffer).
* ``ds.reload(**options)`` is ``load_dataset`` with the same path, config, split and options,
  ``options`` changed (:func:`bigearthnet_txt.loading.split_by_node` reloads with ``rank`` /
  ``world_size``).

* ``ds.with_format("numpy" | "torch")`` keeps the arrays' dtypes
  (:mod:`bigearthnet_txt.tensor_format`) and stays a ``StreamedDataset`` (reloads keep the format).

All three keep the epoch (``set_epoch``). Every other method is ``datasets``' own and returns a
plain ``datasets.IterableDataset``: a ``shuffle`` after ``map`` or ``filter`` is ``datasets``'
buffer of decoded rows, so shuffle first.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
from datasets import IterableDataset

from bigearthnet_txt.tensor_format import FORMAT_KINDS, RowTensors


class StreamedDataset(IterableDataset):
    """A ``datasets.IterableDataset`` that can load itself again with other options (see the module
    docstring)."""

    _reload: Callable[..., StreamedDataset]  # load_dataset with this dataset's arguments
    _format_kind: str = "python"  # a kind of tensor_format.FORMAT_KINDS
    _unformatted: StreamedDataset | None = None  # what a formatted dataset formats

    @classmethod
    def of(
        cls,
        dataset: IterableDataset,
        reload: Callable[..., IterableDataset],
        format_kind: str = "python",
        unformatted: StreamedDataset | None = None,
    ) -> StreamedDataset:
        """``dataset`` as a ``StreamedDataset`` (the same examples) that ``reload(**options)``
        loads again; ``format_kind`` is the format of its examples, made from those of
        ``unformatted``."""
        out = cls(
            ex_iterable=dataset._ex_iterable,
            info=dataset._info,
            split=dataset._split,
            formatting=dataset._formatting,
            distributed=dataset._distributed,
            token_per_repo_id=dataset._token_per_repo_id,
        )
        out._reload, out._format_kind, out._unformatted = reload, format_kind, unformatted
        return out

    def reload(self, **options) -> StreamedDataset:
        """This dataset loaded again with ``options`` (``LoadConfig`` fields) changed, at the same
        epoch and in the same format."""
        dataset = self._reload(**options)
        dataset.set_epoch(self.epoch)
        return dataset.with_format(self._format_kind)

    def with_format(self, type: str | None = None) -> IterableDataset:
        """``"numpy"`` / ``"torch"``: the examples with their arrays in their stored dtypes
        (:mod:`bigearthnet_txt.tensor_format`; ``datasets``' formatters would copy the uint16 S2
        bands into int64), still a ``StreamedDataset``; ``None`` / ``"python"``: the examples as
        loaded; any other format is ``datasets``' own."""
        base = self._unformatted or self
        kind = FORMAT_KINDS.get(type or "python")
        if kind is None:
            return IterableDataset.with_format(base, type)
        if kind == "python":
            return base
        formatted = StreamedDataset.of(base.map(RowTensors(kind)), base._reload, kind, base)
        formatted.set_epoch(self.epoch)
        return formatted

    def shuffle(
        self,
        seed: int | None = None,
        generator: np.random.Generator | None = None,
        buffer_size: int = 1000,
        max_buffer_input_shards: int | None = None,
    ) -> StreamedDataset:
        """Rows shuffled in a buffer of ``buffer_size`` text rows and pieces in shuffled order:
        ``load_dataset(..., shuffle_seed=seed, buffer_size=buffer_size)`` (module docstring).
        ``max_buffer_input_shards`` is accepted for ``datasets``' signature; the buffer is fed
        from one piece at a time."""
        if seed is None:
            rng = copy.deepcopy(generator) if generator is not None else np.random.default_rng()
            seed = int(rng.integers(0, 1 << 63))
        return self.reload(shuffle_seed=seed, buffer_size=buffer_size)
