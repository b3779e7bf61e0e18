"""Join imagery to batches of annotation rows through their ``patch_index`` column.

``ImageryJoin(store, imagery=("s2", "s1"), resolution="native")`` is a picklable callable that takes
a batch ``{column: list | ndarray}`` (``datasets`` batched format) with a ``patch_index`` column of
length ``B`` and returns the batch with these arrays added (one ``store.read`` per batch, each patch
decoded once however many rows share it). With ``share_rows=True`` (what ``with_imagery`` gives a
streamed dataset) each key holds a list of ``B`` read-only per-row arrays instead of one stacked
array: each patch decoded into its own memory, which the rows of that patch share
(:meth:`ImageryJoin.read_rows`; local streaming calls :meth:`ImageryJoin.join_rows` on row dicts):

=====================  ========  ======================  =====================================
key                    dtype     shape                   when
=====================  ========  ======================  =====================================
``s2_10m``             uint16    ``[B, 4, 120, 120]``    ``"s2"``, ``resolution="native"``
``s2_20m``             uint16    ``[B, 6, 60, 60]``      ``"s2"``, ``resolution="native"``
``s2_60m``             uint16    ``[B, 2, 20, 20]``      ``"s2"``, ``resolution="native"``
``s2``                 uint16    ``[B, 12, 120, 120]``   ``"s2"``, ``resolution=120`` (``S2_BANDS``)
``s1``                 float32   ``[B, 2, 120, 120]``    ``"s1"`` (VV, VH in dB)
``has_s1``             bool      ``B`` (list of bool)    ``"s1"``
``reference_map``      uint16    ``[B, 120, 120]``       ``"reference_map"``
``has_reference_map``  bool      ``B`` (list of bool)    ``"reference_map"``
=====================  ========  ======================  =====================================

``has_s1`` is False for a patch without a Sentinel-1 pair: its ``s1`` is all NaN (the array's fill
value, which conversion leaves in place); ``has_reference_map`` is False for a patch without a
reference map: its ``reference_map`` is all 0 (no CORINE code). Both come from the patch table
(``PATCH_SCHEMA``), so a real all-NaN or all-0 patch is never mistaken for a missing one.

Band order within each array is ``IMAGERY_ARRAYS[name].bands``; ``resolution=120`` upsamples the
20 m and 60 m bands by pixel repetition (nearest), as the official loader does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bigearthnet_txt.schema import PATCH_SIZE
from bigearthnet_txt.store import S2_ARRAY_NAMES, ImageryStore, s2_to_120

MODALITIES: tuple[str, ...] = ("s2", "s1", "reference_map")
# The patch table column that says whether a patch has each optional modality.
FLAGS: dict[str, str] = {"s1": "has_s1", "reference_map": "has_reference_map"}
RESOLUTIONS: tuple = ("native", PATCH_SIZE)


def imagery_keys(imagery: Sequence[str], resolution: str | int = "native") -> tuple[str, ...]:
    """Keys an :class:`ImageryJoin` adds, in order (see the module table)."""
    keys: list[str] = []
    for modality in imagery:
        if modality == "s2":
            keys.extend(("s2",) if resolution == PATCH_SIZE else S2_ARRAY_NAMES)
        else:
            keys.extend((modality, FLAGS[modality]))
    return tuple(keys)


class ImageryJoin:
    """Adds the imagery of each row's ``patch_index`` to a batch (see the module docstring)."""

    def __init__(
        self,
        store: ImageryStore,
        imagery: Sequence[str] = ("s2", "s1"),
        resolution: str | int = "native",
        share_rows: bool = False,
    ):
        unknown = [m for m in imagery if m not in MODALITIES]
        if unknown:
            raise ValueError(f"unknown imagery {unknown}; expected a subset of {MODALITIES}")
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be 'native' or {PATCH_SIZE}, got {resolution!r}")
        self.store = store
        self.imagery = tuple(imagery)
        self.resolution = resolution
        self.arrays = tuple(
            name for m in self.imagery for name in (S2_ARRAY_NAMES if m == "s2" else (m,))
        )
        self.keys = imagery_keys(self.imagery, resolution)
        self.share_rows = share_rows
        self._flag_tables: list | None = None  # (flag, patch table column), made on first use
        # read_one's arrays then flags come in the order of ``keys`` (s2 before s1, no maps)
        self._keys_in_read_order = self.keys == self.arrays + tuple(
            flag for modality, flag in FLAGS.items() if modality in self.imagery
        )

    def __repr__(self) -> str:
        return (
            f"ImageryJoin({self.store!r}, imagery={self.imagery}, resolution={self.resolution!r})"
        )

    def read(self, patch_index: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Imagery arrays ``{key: ndarray[len(patch_index), ...]}`` of the given store rows."""
        rows = _store_rows(patch_index)
        batch = self.store.read(rows, self.arrays)
        if "s2" in self.imagery and self.resolution == PATCH_SIZE:
            s2 = s2_to_120(batch)
            for name in S2_ARRAY_NAMES:
                del batch[name]
            batch["s2"] = s2
        return self._with_flags(batch, rows)

    def _with_flags(self, values: dict, rows: np.ndarray) -> dict:
        """``values`` (arrays by name, stacked or one per row) with the modality flags of ``rows``
        added, reduced to :attr:`keys` in their order."""
        for modality, flag in FLAGS.items():
            if modality in self.imagery:
                values[flag] = self._flags(flag, rows, values[modality])
        return {key: values[key] for key in self.keys}

    def _flags(self, flag: str, rows: np.ndarray, values: np.ndarray | list) -> list[bool]:
        """``flag`` of each row from the patch table; from the values (not all fill value) for a
        store object without ``patch_flags``."""
        if hasattr(self.store, "patch_flags"):
            return self.store.patch_flags(flag)[rows].tolist()
        if isinstance(values, list):
            values = np.stack(values) if values else np.empty((0,))
        filled = np.isnan(values) if values.dtype.kind == "f" else values == 0
        return (~filled.reshape(len(rows), -1).all(axis=1)).tolist()

    def read_each(self, patch_index: Sequence[int] | np.ndarray) -> dict[str, list]:
        """Like :meth:`read`, but ``{key: [value, ...]}`` with each row's arrays decoded into their
        own read-only memory (``ImageryStore.read_each``), so that a row kept alive (in a shuffle
        buffer) holds only its own patch."""
        rows = _store_rows(patch_index)
        if hasattr(self.store, "read_each"):
            values = self.store.read_each(rows, self.arrays)
        else:  # a store object with ``read`` only
            batch = self.store.read(rows, self.arrays)
            values = {name: [v.copy() for v in array] for name, array in batch.items()}
        if "s2" in self.imagery and self.resolution == PATCH_SIZE:
            bands = [values.pop(name) for name in S2_ARRAY_NAMES]
            values["s2"] = [
                s2_to_120({n: b[j][None] for n, b in zip(S2_ARRAY_NAMES, bands, strict=True)})[0]
                for j in range(len(rows))
            ]
        values = self._with_flags(values, rows)
        for column in values.values():
            for value in column:
                if isinstance(value, np.ndarray):
                    value.flags.writeable = False
        return values

    def read_one(self, patch_index: int) -> dict:
        """``{key: value}`` of one row: what :meth:`read_each` gives for ``[patch_index]``, with
        less work per call (``ImageryStore.read_one``) at native resolution."""
        if self.resolution != "native" or not hasattr(self.store, "read_one"):
            return {key: column[0] for key, column in self.read_each([patch_index]).items()}
        if patch_index is None:
            _store_rows([patch_index])  # the error for a row without patch_index
        index = int(patch_index)
        values = self.store.read_one(index, self.arrays)
        if self._flag_tables is None:
            self._flag_tables = [
                (flag, self.store.patch_flags(flag).tolist())  # Python bools, fast to index
                for modality, flag in FLAGS.items()
                if modality in self.imagery
            ]
        for flag, table in self._flag_tables:
            values[flag] = table[index]
        return values if self._keys_in_read_order else {key: values[key] for key in self.keys}

    def read_rows(self, patch_index: Sequence[int]) -> dict[str, list]:
        """``{key: [value, ...]}``, one value per row: each patch is decoded once into its own
        read-only arrays (:meth:`read_each`), which the rows of that patch share."""
        where = {p: j for j, p in enumerate(dict.fromkeys(patch_index))}
        values = self.read_each(list(where))
        positions = [where[p] for p in patch_index]
        return {key: [column[j] for j in positions] for key, column in values.items()}

    def join_rows(self, rows: list[dict]) -> list[dict]:
        """``rows`` (dicts with ``patch_index``, changed in place) with the imagery of their patch
        added (:meth:`read_rows`)."""
        values = self.read_rows([row["patch_index"] for row in rows])
        for j, row in enumerate(rows):
            row.update({key: column[j] for key, column in values.items()})
        return rows

    def __call__(self, batch: Mapping[str, Sequence]) -> dict:
        """``batch`` plus the imagery of its ``patch_index`` column (stacked arrays, or one value
        per row with ``share_rows``: :meth:`read_rows`); a batch of other columns only (what
        ``Dataset.map(..., input_columns=[...])`` formats) as it is."""
        if "patch_index" not in batch:
            return dict(batch)
        read = self.read_rows if self.share_rows else self.read
        return {**batch, **read(batch["patch_index"])}


def _store_rows(patch_index: Sequence[int] | np.ndarray) -> np.ndarray:
    """int64 store rows of ``patch_index``; ValueError for a row without one."""
    if any(i is None for i in patch_index):
        raise ValueError("rows without patch_index have no imagery (converted without imagery?)")
    return np.asarray(patch_index, dtype=np.int64)
