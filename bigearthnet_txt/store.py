"""Read side of the imagery store: ``ImageryStore`` over ``DIR/imagery.zarr`` + ``DIR/patches.parquet``.

The store (written by ``bigearthnet-txt convert``) holds one leading patch axis shared by every array
(``bigearthnet_txt.schema.IMAGERY_ARRAYS``)::

    s2_10m         uint16  [N, 4, 120, 120]  B02 B03 B04 B08
    s2_20m         uint16  [N, 6, 60, 60]    B05 B06 B07 B8A B11 B12
    s2_60m         uint16  [N, 2, 20, 20]    B01 B09
    s1             float32 [N, 2, 120, 120]  VV VH (dB; NaN where a patch has no S1)
    reference_map  uint16  [N, 120, 120]     CORINE level-3 codes (optional)

Row ``patch_index`` of every array is the patch of that ``patch_index`` in the patch table; splits
are contiguous row ranges (``split_range``); rows between splits are padding and never listed.

API::

    store = ImageryStore("DIR")                  # or "DIR/imagery.zarr"; opens lazily, picklable
    store.patches                                # pyarrow.Table (PATCH_SCHEMA), one row per patch
    store.patches_df()                           # the same as a pandas DataFrame
    store.attrs                                  # the STORE_ATTRS_KEY dict (sources, codecs, settings)
    store.arrays                                 # ("s2_10m", "s2_20m", "s2_60m", "s1", ...)
    store.band_names                             # {"s2_10m": ("B02", ...), ...}
    store.stats                                  # {"B02": {"mean": .., "std": .., "count": ..}, ...}
    store.split_range("train")                   # (start, stop); store.split_ranges: all splits
    store.split_indices("train")                 # np.ndarray[int64] patch_index of a split's patches
    store.indices_of(["S2A_..._75_43"])          # np.ndarray[int64] of patch_index
    batch = store.read([5, 1, 9], arrays=("s2_10m", "s1"))   # {"s2_10m": [3,4,120,120], ...}
    s2 = store.read_s2_120([5, 1, 9])            # uint16 [3, 12, 120, 120] in S2_BANDS order
    s2_to_120(batch)                             # the same from an already read batch

``read`` returns rows in the requested order (duplicates allowed); it sorts and deduplicates the
indices, then decodes only the wanted one-patch chunks, opening each shard file once
(``bigearthnet_txt.shards``; zarr-python for layouts that module does not handle).
A store whose conversion has not finished is refused (``ValueError``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

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


def s2_to_120(batch: dict[str, np.ndarray]) -> np.ndarray:
    """Stack ``s2_10m``/``s2_20m``/``s2_60m`` of a batch into uint16 ``[B, 12, 120, 120]`` in
    ``S2_BANDS`` order, upsampling 20 m (×2) and 60 m (×6) by nearest neighbour (pixel repeat)."""
    first = batch[S2_ARRAY_NAMES[0]]
    out = np.empty((first.shape[0], len(S2_BANDS), 120, 120), dtype=first.dtype)
    for array in S2_ARRAYS:
        factor = 120 // array.size
        values = batch[array.name]
        if factor > 1:
            values = values.repeat(factor, axis=-2).repeat(factor, axis=-1)
        for b, band in enumerate(array.bands):
            out[:, S2_BANDS.index(band)] = values[:, b]
    return out


class ImageryStore:
    """Lazy reader of one converted imagery store (see the module docstring for the API)."""

    def __init__(self, path: Path | str):
        path = Path(path)
        self.root = path.parent if path.name == IMAGERY_STORE else path
        self.zarr_path = self.root / IMAGERY_STORE
        self._group = None
        self._patches: pa.Table | None = None
        self._index_of: dict[str, int] | None = None
        self._layouts: dict[str, ShardLayout | None] = {}

    def __getstate__(self) -> dict:
        return {"root": self.root, "zarr_path": self.zarr_path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["zarr_path"])

    def __repr__(self) -> str:
        return f"ImageryStore({str(self.root)!r})"

    # -- lazy handles -----------------------------------------------------------------------------

    @property
    def group(self):
        """The opened ``zarr.Group`` (read-only), opened on first use in each process."""
        if self._group is None:
            import zarr

            if not (self.zarr_path / "zarr.json").is_file():
                raise FileNotFoundError(f"{self.zarr_path}: no imagery store here")
            group = zarr.open_group(self.zarr_path, mode="r")
            attrs = group.attrs.get(STORE_ATTRS_KEY) or {}
            if not attrs.get("complete"):
                raise ValueError(f"{self.zarr_path}: conversion not finished (rerun the convert command)")
            self._group = group
        return self._group

    @property
    def attrs(self) -> dict:
        """The store's ``STORE_ATTRS_KEY`` attributes (bands, stats, sources, codecs, splits)."""
        return dict(self.group.attrs[STORE_ATTRS_KEY])

    @property
    def patches(self) -> pa.Table:
        """The patch table (``PATCH_SCHEMA``), sorted by ``patch_index``."""
        if self._patches is None:
            self._patches = pq.read_table(self.root / PATCH_TABLE)
        return self._patches

    def patches_df(self):
        """The patch table as a pandas DataFrame."""
        return self.patches.to_pandas()

    # -- description ------------------------------------------------------------------------------

    @property
    def arrays(self) -> tuple[str, ...]:
        """Names of the arrays present, in ``IMAGERY_ARRAYS`` order."""
        present = set(self.group.array_keys())
        return tuple(name for name in IMAGERY_ARRAYS if name in present)

    @property
    def band_names(self) -> dict[str, tuple[str, ...]]:
        """``{array: band names}`` as recorded in each array's attributes."""
        return {name: tuple(self.group[name].attrs.get("bands", ())) for name in self.arrays}

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
                zip(self.patches["patch_id"].to_pylist(), self.patches["patch_index"].to_pylist(), strict=True)
            )
        try:
            return np.array([self._index_of[p] for p in patch_ids], dtype=np.int64)
        except KeyError as err:
            raise KeyError(f"{self.root}: patch {err.args[0]} is not in the store") from None

    def split_indices(self, split: str) -> np.ndarray:
        """``patch_index`` of the patches of one split (ascending)."""
        table = self.patches.filter(pc.equal(self.patches["split"], split))
        return table["patch_index"].to_numpy().astype(np.int64)

    # -- reading ----------------------------------------------------------------------------------

    def read(self, indices: Sequence[int] | np.ndarray, arrays: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Read rows ``indices`` (any order, repeats allowed) of ``arrays`` (default: all present).

        Returns ``{array: ndarray[len(indices), ...]}`` in the requested order.
        """
        names = tuple(arrays) if arrays is not None else self.arrays
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        unique, inverse = np.unique(idx, return_inverse=True)
        out: dict[str, np.ndarray] = {}
        for name in names:
            if name not in IMAGERY_ARRAYS:
                raise KeyError(f"unknown array {name!r}; expected one of {tuple(IMAGERY_ARRAYS)}")
            z = self.group[name]
            if unique.size and (unique[0] < 0 or unique[-1] >= z.shape[0]):
                raise IndexError(f"{self.zarr_path}/{name}: patch index out of range [0, {z.shape[0]})")
            layout = self._layout(name)
            if layout is not None:
                values = layout.read_rows(unique)
            elif unique.size == 0:
                values = np.empty((0, *z.shape[1:]), dtype=z.dtype)
            elif unique.size == unique[-1] - unique[0] + 1:
                values = z[int(unique[0]) : int(unique[-1]) + 1]
            else:
                values = z.get_orthogonal_selection((unique,) + (slice(None),) * (z.ndim - 1))
            out[name] = values if np.array_equal(unique, idx) else values[inverse]
        return out

    def _layout(self, name: str) -> ShardLayout | None:
        if name not in self._layouts:
            self._layouts[name] = ShardLayout.load(self.zarr_path / name)
        return self._layouts[name]

    def read_s2_120(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """uint16 ``[len(indices), 12, 120, 120]`` S2 in ``S2_BANDS`` order (nearest upsampling)."""
        return s2_to_120(self.read(indices, S2_ARRAY_NAMES))
