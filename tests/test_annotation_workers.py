"""Annotation conversion on two worker processes writes byte-identical tables to the serial run."""

from __future__ import annotations

import functools

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bigearthnet_txt.conversion import annotations
from bigearthnet_txt.conversion.annotations import AnnotationSettings, convert_annotations
from bigearthnet_txt.conversion.synthetic import write_full_size
from bigearthnet_txt.schema import DATA_DIR


def tables_bytes(out) -> dict[str, bytes]:
    folder = out / DATA_DIR
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


def test_two_workers_write_byte_identical_tables(tmp_path, monkeypatch):
    """A scaled-down full-size file (patches straddling row groups), many buckets and files; small
    data pages, so that page boundaries would show any difference in how rows reach the writer."""
    small_pages = functools.partial(pq.ParquetWriter, data_page_size=2048, write_batch_size=64)
    monkeypatch.setattr(annotations.pq, "ParquetWriter", small_pages)
    src = write_full_size(tmp_path / "full.parquet", rows=20_000, patches=1_000, row_groups=6)
    settings = AnnotationSettings(patches_per_bucket=150, rows_per_shard=1_500, row_group_size=400)
    serial = convert_annotations(src, tmp_path / "serial", settings, progress=False)
    parallel = convert_annotations(src, tmp_path / "parallel", settings, progress=False, workers=2)
    one, two = tables_bytes(tmp_path / "serial"), tables_bytes(tmp_path / "parallel")
    assert len(one) > 8 and one.keys() == two.keys()
    for name in one:
        assert one[name] == two[name], name
    assert serial.rows == parallel.rows and serial.files == parallel.files
    sizes = [
        pq.ParquetFile(tmp_path / "serial" / DATA_DIR / name).metadata.row_group(0).num_rows
        for name in one
    ]
    assert max(sizes) == 400  # full row groups whatever the buckets


def test_sample_with_patch_index_and_a_bad_row(sample_release_file, sample_release_table, tmp_path):
    patches = sorted(set(sample_release_table["patch_id"].to_pylist()))
    patch_index = {p: i for i, p in enumerate(reversed(patches))}
    settings = AnnotationSettings(patches_per_bucket=2, rows_per_shard=7, row_group_size=5)
    for workers, name in ((1, "serial"), (2, "parallel")):
        convert_annotations(
            sample_release_file, tmp_path / name, settings, patch_index=patch_index,
            progress=False, workers=workers,
        )  # fmt: skip
    assert tables_bytes(tmp_path / "serial") == tables_bytes(tmp_path / "parallel")

    t = sample_release_table
    i = t["type"].to_pylist().index("mcq")
    bad = t.set_column(
        t.schema.get_field_index("output"),
        "output",
        pa.array([("e" if j == i else v) for j, v in enumerate(t["output"].to_pylist())]),
    )
    src = tmp_path / "bad.parquet"
    pq.write_table(bad, src, row_group_size=9)
    with pytest.raises(ValueError, match=f"ID={t['ID'][i].as_py()}"):
        convert_annotations(src, tmp_path / "bad", settings, progress=False, workers=2)
    assert not (tmp_path / "bad" / DATA_DIR).exists()
