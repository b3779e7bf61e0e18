"""Check an annotation file completely before any conversion work starts.

``check_annotations(source, metadata=None)`` reads the file once, row group by row group, and raises
:class:`~bigearthnet_txt.conversion.annotation_table.AnnotationError` (a
``bigearthnet_txt.errors.InputError``) naming the file, the column, the value and the row ``ID`` of
the first problem:

* not a Parquet file, missing/extra columns or wrong types, no rows at all;
* every check of :func:`~bigearthnet_txt.conversion.annotation_table.parse_table` (nulls, unknown
  ``split``/``type``/``category`` values, answers, boxes, points), on every row;
* the cross-row checks of :func:`~bigearthnet_txt.conversion.annotations.scan` (unique IDs, one
  split and one ``s1_name`` per patch, 1:1 pairs);
* with ``metadata`` (the BigEarthNet metadata table, see
  :func:`~bigearthnet_txt.conversion.imagery.metadata.load_metadata`): every ``patch_id`` is a
  metadata patch and its ``s1_name`` is the metadata's S1 pair of that patch (otherwise the tables
  and the imagery store would disagree);
* with ``s2_folders`` (local S2 source folders, v2 / flat / v1.0 layouts) and ``metadata``: every
  annotated patch has its S2 patch folder there, by ``patch_id`` or v1.0 name (``s2v1_name``).
  Only the folders are listed (no file is read). Archives and URLs cannot be listed without
  streaming them; the imagery passes report their missing patches at the end of the S2 pass.

``bigearthnet-txt convert`` runs it before the imagery passes (which take about an hour at full
size), so bad annotations fail in seconds, not after the imagery is converted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bigearthnet_txt.conversion.annotation_table import (
    AnnotationError,
    open_annotation_file,
    parse_table,
)
from bigearthnet_txt.conversion.annotations import scan
from bigearthnet_txt.conversion.imagery.sources import iter_folder


def check_against_metadata(pf: pq.ParquetFile, source: str, metadata: pa.Table) -> None:
    """Every ``patch_id`` is a metadata patch and its ``s1_name`` the metadata's pair of it."""
    ids, pairs = metadata["patch_id"].combine_chunks(), metadata["s1_name"].combine_chunks()
    for rg in range(pf.num_row_groups):
        t = pf.read_row_group(rg, columns=["ID", "patch_id", "s1_name"])
        at = pc.index_in(t["patch_id"], value_set=ids)
        unknown = pc.is_null(at)
        if pc.any(unknown).as_py():
            i = pc.index(unknown, True).as_py()
            raise AnnotationError(
                f"{source}: row ID={t['ID'][i].as_py()}, column 'patch_id': patch "
                f"{t['patch_id'][i].as_py()!r} is not in the BigEarthNet metadata; check the "
                "annotation file and --metadata"
            )
        expected = pairs.take(at)
        differs = pc.not_equal(t["s1_name"], expected)
        if pc.any(differs).as_py():
            i = pc.index(differs, True).as_py()
            raise AnnotationError(
                f"{source}: row ID={t['ID'][i].as_py()}, column 's1_name': "
                f"{t['s1_name'][i].as_py()!r} differs from the metadata's S1 pair "
                f"{expected[i].as_py()!r} of patch {t['patch_id'][i].as_py()}; the tables and the "
                "imagery store would disagree"
            )


def s2_patch_ids_in_folders(folders: Sequence[Path], metadata: pa.Table) -> pa.Array:
    """The ``patch_id`` of every S2 patch folder under ``folders`` (string array), v1.0 folder
    names mapped to their ``patch_id`` through the metadata's ``s2v1_name``."""
    names = pa.array(
        sorted({p.name for folder in folders for p in iter_folder(folder)}), pa.string()
    )
    ids = metadata["patch_id"].combine_chunks()
    by_v1_name = ids.filter(pc.is_in(metadata["s2v1_name"].combine_chunks(), value_set=names))
    return pa.concat_arrays([names, by_v1_name.cast(pa.string())])


def check_against_folders(
    pf: pq.ParquetFile, source: str, folders: Sequence[Path], metadata: pa.Table
) -> None:
    """Every annotated ``patch_id`` has its S2 patch folder in ``folders`` (listing only)."""
    present = s2_patch_ids_in_folders(folders, metadata)
    for rg in range(pf.num_row_groups):
        t = pf.read_row_group(rg, columns=["ID", "patch_id"])
        missing = pc.invert(pc.is_in(t["patch_id"], value_set=present))
        if pc.any(missing).as_py():
            i = pc.index(missing, True).as_py()
            shown = ", ".join(str(f) for f in folders)
            raise AnnotationError(
                f"{source}: row ID={t['ID'][i].as_py()}, column 'patch_id': patch "
                f"{t['patch_id'][i].as_py()!r} has no S2 patch folder in {shown}; add its imagery, "
                "or pass --skip-bad to leave the rows of patches without imagery out"
            )


def check_annotations(
    source: Path | str,
    metadata: pa.Table | None = None,
    s2_folders: Sequence[Path] = (),
) -> int:
    """Check ``source`` completely (module docstring); returns its number of rows.
    ``s2_folders`` are checked only together with ``metadata``."""
    source = Path(source)
    pf = open_annotation_file(source)
    for rg in range(pf.num_row_groups):
        parse_table(pf.read_row_group(rg), str(source))
    scan(pf, str(source), None)
    if metadata is not None:
        check_against_metadata(pf, str(source), metadata)
        if s2_folders:
            check_against_folders(pf, str(source), s2_folders, metadata)
    return pf.metadata.num_rows
