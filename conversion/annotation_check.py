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
  and the imagery store would disagree).

``bigearthnet-txt convert`` runs it before the imagery passes (which take about an hour at full
size), so bad annotations fail in seconds, not after the imagery is converted.
"""

from __future__ import annotations

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


def check_annotations(source: Path | str, metadata: pa.Table | None = None) -> int:
    """Check ``source`` completely (module docstring); returns its number of rows."""
    source = Path(source)
    pf = open_annotation_file(source)
    for rg in range(pf.num_row_groups):
        parse_table(pf.read_row_group(rg), str(source))
    scan(pf, str(source), None)
    if metadata is not None:
        check_against_metadata(pf, str(source), metadata)
    return pf.metadata.num_rows
