"""``with_format("numpy" | "torch")`` on what ``load_dataset`` returns: the imagery stays joined
and keeps its stored dtypes.

``datasets``' own formats would not do that. On a map-style dataset, ``with_format`` replaces the
transform that joins the imagery, so the arrays silently vanish. On a streamed one, ``datasets``'
numpy and torch formatters copy every integer array into int64: four times the memory of the uint16
S2 bands. Here instead (``kind`` is ``"numpy"`` or ``"torch"``, also spelled ``"np"`` / ``"pt"``):

* every ``numpy.ndarray`` value (the imagery: uint16 S2 and reference maps, float32 S1, stacked
  ``[B, ...]`` in a batch) stays a numpy array of its dtype, or becomes a torch tensor of that dtype
  (``torch.uint16`` for S2: ``.float()`` / ``.to(torch.int32)`` before arithmetic). A tensor
  shares the array's memory when the array is writeable (a map-style batch); otherwise (streamed
  rows, whose read-only arrays the rows of a patch share) it gets a copy;
* every other value (the text columns, ``has_s1``) is formatted by ``datasets``' formatter of that
  kind, with the ``format_kwargs`` given: in a map-style batch from an Arrow table of the
  dataset's features (``format_batch``: exactly ``datasets``' own batch format; a row is the
  batch's first element), in a streamed row from its Python values (``recursive_tensorize``, as
  ``datasets`` formats a streamed example).

``"python"`` keeps the plain join (the arrays as read). :class:`TensorJoin` is the transform a
map-style ``JoinedDataset`` gets from ``set_format``/``with_format`` (``columns`` and
``output_all_columns`` as in ``datasets``; the imagery keys may be named in ``columns``);
:class:`RowTensors` is the function a streamed dataset maps its rows through.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bigearthnet_txt.imagery_join import ImageryJoin

# Format names kept joined, by kind ("python": the arrays as read, nothing else changed).
FORMAT_KINDS: dict[str, str] = {
    "python": "python", "numpy": "numpy", "np": "numpy", "torch": "torch", "pt": "torch",
}  # fmt: skip


class RowTensors:
    """``values`` (a row or a batch as a dict) with numpy arrays kept or made tensors of their
    dtype and every other value formatted by ``datasets``' ``kind`` formatter (module docstring).
    Picklable."""

    def __init__(self, kind: str, **format_kwargs):
        if kind not in FORMAT_KINDS:
            raise ValueError(f"unknown format {kind!r}; expected one of {list(FORMAT_KINDS)}")
        self.kind = FORMAT_KINDS[kind]
        self.format_kwargs = format_kwargs
        self._formatter = None

    def __getstate__(self) -> dict:  # the formatter is made on first use
        return dict(self.__dict__, _formatter=None)

    def __call__(self, values: dict) -> dict:
        if self.kind == "python":
            return dict(values)
        if self._formatter is None:
            from datasets.formatting import get_formatter

            self._formatter = get_formatter(self.kind, **self.format_kwargs)
        arrays = {k: v for k, v in values.items() if isinstance(v, np.ndarray)}
        out = self._formatter.recursive_tensorize(
            {k: v for k, v in values.items() if k not in arrays}
        )
        for key, value in arrays.items():
            out[key] = value if self.kind == "numpy" else _tensor(value)
        return {key: out[key] for key in values}


def _tensor(array: np.ndarray):
    """A torch tensor of ``array``'s dtype: its memory when writeable, else a copy."""
    import torch

    return torch.from_numpy(array if array.flags.writeable else array.copy())


class TensorJoin:
    """The custom transform of a map-style dataset in format ``kind``: the text columns of a batch
    formatted by ``datasets``' formatter of that kind from an Arrow table of ``features`` (what
    ``datasets``' own format gives for those columns), the imagery of its ``patch_index`` added by
    ``join`` (an :class:`~bigearthnet_txt.imagery_join.ImageryJoin`) and formatted as in
    :class:`RowTensors`. ``columns`` (table columns and imagery keys) are those formatted and
    returned, with the others returned unformatted when ``output_all_columns``."""

    def __init__(
        self,
        join: ImageryJoin,
        kind: str,
        features=None,
        columns: Sequence[str] | None = None,
        output_all_columns: bool = False,
        **format_kwargs,
    ):
        self.join = join
        self.tensors = RowTensors(kind, **format_kwargs)
        self.features = features
        self.columns = None if columns is None else list(columns)
        self.output_all_columns = output_all_columns
        self._formatter = None

    def __getstate__(self) -> dict:  # the formatter and its column types are made on first use
        state = dict(self.__dict__, _formatter=None)
        state.pop("_types", None)
        return state

    def __repr__(self) -> str:
        return f"TensorJoin({self.join!r}, kind={self.tensors.kind!r}, columns={self.columns})"

    def __call__(self, batch: dict) -> dict:
        # a batch without patch_index is one column read alone (e.g. ``ds["input"]``)
        keys = [*batch, *(self.join.keys if "patch_index" in batch else ())]
        wanted = keys if self.columns is None else [k for k in keys if k in self.columns]
        needed = self.output_all_columns or any(k not in batch for k in wanted)
        imagery = self.join.read(batch["patch_index"]) if len(keys) > len(batch) and needed else {}
        out = self._format_text({k: batch[k] for k in wanted if k in batch})
        out.update(self.tensors({k: imagery[k] for k in wanted if k in imagery}))
        if self.output_all_columns:
            out.update({k: v for k, v in {**batch, **imagery}.items() if k not in out})
        return out

    def _format_text(self, columns: dict) -> dict:
        """``columns`` (Python lists) as ``datasets``' formatter of this kind gives them."""
        import pyarrow as pa

        if self._formatter is None:
            from datasets.formatting import get_formatter

            kwargs = self.tensors.format_kwargs
            self._formatter = get_formatter(self.tensors.kind, features=self.features, **kwargs)
            schema = pa.schema([]) if self.features is None else self.features.arrow_schema
            self._types = {field.name: field.type for field in schema}
        types = self._types
        table = pa.table({k: pa.array(v, type=types.get(k)) for k, v in columns.items()})
        return dict(self._formatter.format_batch(table))
