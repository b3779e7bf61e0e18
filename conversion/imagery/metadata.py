"""Patch metadata and the patch plan: which patches, in which order, at which ``patch_index``.

``load_metadata(files)`` concatenates ``metadata.parquet`` and the optional snow/cloud parquet.
``annotation_splits(file)`` reads the distinct ``patch_id -> split`` of an annotation table
(the text release, ``bench`` included). ``plan_patches(...)`` orders the selected patches: splits
contiguous in ``SPLITS`` order (train, validation, test, bench), ``patch_id``-sorted inside a split,
and every split starting on a shard boundary (the unused rows at the end of a split's last shard
are padding: never written, they cost no bytes). ``patch_index`` is the row in ``imagery.zarr``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bigearthnet_txt.errors import InputError
from bigearthnet_txt.schema import SPLITS

#: File names of the metadata parquets of a release (found beside the sources by ``find_metadata``).
METADATA_NAMES = ("metadata.parquet", "metadata_for_patches_with_snow_cloud_or_shadow.parquet")


def find_metadata(sources: Iterable[Path | str]) -> list[Path]:
    """Metadata parquets found beside or inside the given sources (first folder that has them)."""
    for source in sources:
        for folder in (Path(source), Path(source).parent):
            found = [folder / n for n in METADATA_NAMES if (folder / n).is_file()]
            if found:
                return found
    return []


METADATA_COLUMNS: tuple[str, ...] = (
    "patch_id", "labels", "split", "country", "s1_name", "s2v1_name",
    "contains_seasonal_snow", "contains_cloud_or_shadow",
)  # fmt: skip


def load_metadata(files: Iterable[Path | str]) -> pa.Table:
    """Read and concatenate metadata parquets (columns ``METADATA_COLUMNS``), unique by
    ``patch_id``."""
    tables = []
    for f in files:
        if not Path(f).is_file():
            raise FileNotFoundError(f"{f}: metadata file not found")
        table = pq.read_table(f)
        missing = [c for c in METADATA_COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(f"{f}: not a BigEarthNet metadata file, missing columns {missing}")
        tables.append(table.select(list(METADATA_COLUMNS)))
    if not tables:
        raise ValueError(
            "no metadata file given (metadata.parquet is needed for splits and pairing)"
        )
    table = pa.concat_tables(tables, promote_options="permissive")
    ids = table["patch_id"].to_pylist()
    if len(set(ids)) != len(ids):
        _, first = np.unique(np.asarray(ids, dtype=object), return_index=True)
        table = table.take(np.sort(first))
    return table


def annotation_splits(file: Path | str) -> dict[str, str]:
    """Distinct ``patch_id -> split`` of an annotation table (release or converted table)."""
    if not Path(file).is_file():
        raise FileNotFoundError(f"{file}: annotation table not found")
    try:
        table = pq.read_table(file, columns=["ID", "patch_id", "split"])
    except (pa.ArrowInvalid, OSError, KeyError) as err:
        raise InputError(f"{file}: not a readable annotation table ({err})") from None
    unknown = pc.invert(pc.is_in(table["split"], pa.array(SPLITS)))
    if pc.any(unknown).as_py():
        i = pc.index(unknown, True).as_py()
        raise InputError(
            f"{file}: row ID={table['ID'][i].as_py()}, column 'split': unknown value "
            f"{table['split'][i].as_py()!r} (allowed: {', '.join(SPLITS)})"
        )
    pairs = table.group_by(["patch_id", "split"]).aggregate([])
    result: dict[str, str] = {}
    for pid, split in zip(pairs["patch_id"].to_pylist(), pairs["split"].to_pylist(), strict=True):
        if pid in result and result[pid] != split:
            raise ValueError(f"{file}: patch {pid} occurs in splits {result[pid]!r} and {split!r}")
        result[pid] = split
    return result


@dataclass
class PatchPlan:
    """The ordered patches of one store.

    ``rows`` is the metadata of the selected patches in store order (a pyarrow Table with
    ``METADATA_COLUMNS`` + ``patch_index`` int32 + the final ``split``); ``n_rows`` the length of
    the arrays' patch axis (padding included); ``split_ranges[split] = (start, stop)``.
    """

    rows: pa.Table
    n_rows: int
    shard_size: int
    split_ranges: dict[str, tuple[int, int]]

    def __post_init__(self) -> None:
        self.patch_ids: list[str] = self.rows["patch_id"].to_pylist()
        self.indices: np.ndarray = self.rows["patch_index"].to_numpy()
        self.by_patch_id = dict(zip(self.patch_ids, self.indices.tolist(), strict=True))
        self.by_s1_name = dict(
            zip(self.rows["s1_name"].to_pylist(), self.indices.tolist(), strict=True)
        )
        self.by_s2v1_name = dict(
            zip(self.rows["s2v1_name"].to_pylist(), self.indices.tolist(), strict=True)
        )
        self.name_of_index = dict(zip(self.indices.tolist(), self.patch_ids, strict=True))
        self.split_of_index = dict(
            zip(self.indices.tolist(), self.rows["split"].to_pylist(), strict=True)
        )

    def shard_rows(self) -> dict[int, list[int]]:
        """``{shard: [patch_index, ...]}`` of the shards holding at least one patch."""
        shards: dict[int, list[int]] = {}
        for index in self.indices.tolist():
            shards.setdefault(index // self.shard_size, []).append(index)
        return shards


def plan_patches(
    metadata: pa.Table,
    shard_size: int,
    *,
    splits: Mapping[str, str] | None = None,
    patch_ids: Iterable[str] | None = None,
) -> PatchPlan:
    """Plan the store order.

    ``splits``: the annotation ``patch_id -> split`` (selects those patches unless ``patch_ids`` is
    given; its split wins over the metadata split). ``patch_ids``: an explicit selection. Neither:
    every metadata patch. A selected patch absent from the metadata is an error naming it.
    """
    known = set(metadata["patch_id"].to_pylist())
    if patch_ids is not None:
        selection = list(dict.fromkeys(patch_ids))
    elif splits is not None:
        selection = list(splits)
    else:
        selection = metadata["patch_id"].to_pylist()
    unknown = [p for p in selection if p not in known]
    if unknown:
        raise ValueError(
            f"{len(unknown)} selected patch(es) are not in the metadata, e.g. {unknown[:3]}"
        )
    rows = metadata.filter(pc.is_in(metadata["patch_id"], pa.array(selection, pa.string())))
    final_split = [
        (splits or {}).get(pid, split)
        for pid, split in zip(rows["patch_id"].to_pylist(), rows["split"].to_pylist(), strict=True)
    ]
    bad = sorted({s for s in final_split if s not in SPLITS})
    if bad:
        raise ValueError(f"unknown split(s) {bad}; expected one of {SPLITS}")
    rows = rows.set_column(
        rows.column_names.index("split"), "split", pa.array(final_split, pa.string())
    )
    ids = rows["patch_id"].to_pylist()
    order = sorted(range(rows.num_rows), key=lambda i: (SPLITS.index(final_split[i]), ids[i]))
    rows = rows.take(order)
    split_ranges: dict[str, tuple[int, int]] = {}
    indices: list[int] = []
    start = 0
    split_col = rows["split"].to_pylist()
    for split in SPLITS:
        count = split_col.count(split)
        if not count:
            continue
        split_ranges[split] = (start, start + count)
        indices.extend(range(start, start + count))
        start += -(-count // shard_size) * shard_size
    rows = rows.append_column("patch_index", pa.array(indices, pa.int32()))
    return PatchPlan(rows=rows, n_rows=start, shard_size=shard_size, split_ranges=split_ranges)
