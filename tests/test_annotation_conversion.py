"""Annotation conversion: exact rows, parsed columns, layout, errors and atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from bigearthnet_txt import annotations as ann
from bigearthnet_txt import redundancy
from bigearthnet_txt.conversion.annotations import (
    TMP_DIR,
    AnnotationSettings,
    convert_annotations,
)
from bigearthnet_txt.conversion.cli import main
from bigearthnet_txt.conversion.synthetic import write_full_size
from bigearthnet_txt.schema import (
    ANNOTATION_SUMMARY,
    CATEGORIES_BY_TYPE,
    RELEASE_COLUMNS,
    SPLITS,
    TABLE_SCHEMA,
    TABLE_TASKS,
    TASK_OF_TYPE,
)


def read_all(out: Path) -> pa.Table:
    files = sorted((out / "data").rglob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files])


@pytest.fixture(scope="module")
def converted(sample_release_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted")
    convert_annotations(
        sample_release_file, out, AnnotationSettings(rows_per_shard=12), progress=False
    )
    return out


def test_fixture_covers_every_release_variant(sample_release_table):
    t = sample_release_table
    combos = set(zip(t["type"].to_pylist(), t["category"].to_pylist(), strict=True))
    assert combos == {(ty, c) for ty, cats in CATEGORIES_BY_TYPE.items() for c in cats}
    assert set(t["split"].to_pylist()) == set(SPLITS)
    mcq = t.filter(pc.equal(t["type"], "mcq"))["input"].to_pylist()
    assert any("," in opt for s in mcq for opt in ann.parse_mcq(s)[1])
    boxes = " ".join(t.filter(pc.equal(t["type"], "bounding box"))["output"].to_pylist())
    assert "0.0" in boxes and "1.0" in boxes
    inputs = " ".join(t["input"].to_pylist())
    assert "<ref>" in inputs and "<point>(" in inputs
    captioned = set(t.filter(pc.equal(t["type"], "captioning"))["patch_id"].to_pylist())
    assert set(t["patch_id"].to_pylist()) - captioned, "a patch without a caption"
    assert "None" in t["category"].to_pylist()


def test_every_row_survives_unchanged(converted, sample_release_table):
    out = read_all(converted)
    src = sample_release_table.sort_by("ID")
    got = out.select(list(RELEASE_COLUMNS)).sort_by("ID")
    assert got.equals(src)
    assert len(set(out["ID"].to_pylist())) == out.num_rows  # no row twice


def test_every_table_has_the_identical_schema(converted):
    files = sorted((converted / "data").rglob("*.parquet"))
    assert len(files) > len(TABLE_TASKS) * len(SPLITS) - 1  # several shards, all tasks/splits
    for f in files:
        assert pq.read_schema(f).remove_metadata().equals(TABLE_SCHEMA), f


def test_layout_tasks_and_splits(converted):
    for f in sorted((converted / "data").rglob("*.parquet")):
        task, split = f.parent.name, f.name.rsplit("-", 1)[0]
        t = pq.read_table(f)
        assert set(t["split"].to_pylist()) == {split}
        assert {TASK_OF_TYPE[x] for x in t["type"].to_pylist()} == {task}
    summary = json.loads((converted / ANNOTATION_SUMMARY).read_text())
    assert sum(sum(v.values()) for v in summary["rows"].values()) == read_all(converted).num_rows


def test_rows_sorted_by_patch_and_patches_never_split(converted):
    for task_dir in sorted((converted / "data").iterdir()):
        for split in SPLITS:
            files = sorted(task_dir.glob(f"{split}-*.parquet"))
            owners = {}
            keys = []
            for f in files:
                t = pq.read_table(f)
                for pid, row_id in zip(t["patch_id"].to_pylist(), t["ID"].to_pylist(), strict=True):
                    assert owners.setdefault(pid, f) == f, f"{pid} split over files"
                    keys.append((pid, row_id))
            assert keys == sorted(keys)


def test_parsed_columns_equal_the_python_parsers(converted):
    for row in read_all(converted).to_pylist():
        ty = row["type"]
        if ty == "mcq":
            assert row["options"] == ann.parse_mcq(row["input"])[1]
            assert row["answer_index"] == ann.answer_index(row["output"])
            assert ann.render_mcq(ann.parse_mcq(row["input"])[0], row["options"]) == row["input"]
        else:
            assert row["options"] is None and row["answer_index"] is None
        assert row["answer_bool"] == (ann.parse_binary(row["output"]) if ty == "binary" else None)
        if ty == "bounding box":
            box = pq.read_table  # noqa: F841 (keep flake quiet)
            np.testing.assert_array_equal(
                np.float32(row["box"]), np.float32(ann.parse_box(row["output"]))
            )
            assert ann.render_box(list(np.float32(row["box"]))) == row["output"]
        else:
            assert row["box"] is None
        if row["category"] == "point":
            np.testing.assert_array_equal(
                np.float32(row["point"]), np.float32(ann.parse_point(row["input"]))
            )
        else:
            assert row["point"] is None
        assert row["ref"] == (
            ann.parse_ref(row["input"]) if row["category"] == "reference" else None
        )
        assert row["patch_index"] is None


def test_redundancy_weights_per_patch(converted):
    t = read_all(converted)
    for pid in set(t["patch_id"].to_pylist()):
        rows = t.filter(pc.equal(t["patch_id"], pid)).sort_by("ID")
        texts = [
            f"{i} {o}"
            for i, o in zip(rows["input"].to_pylist(), rows["output"].to_pylist(), strict=True)
        ]
        np.testing.assert_allclose(
            rows["uniqueness"].to_numpy(), redundancy.uniqueness(texts), atol=1e-6
        )
        np.testing.assert_allclose(
            rows["redundancy_weight"].to_numpy(), redundancy.weights(texts), atol=1e-6
        )
        assert abs(rows["redundancy_weight"].to_numpy().sum() - 1) < 1e-5
    meta = json.loads(
        pq.read_schema(next((converted / "data").rglob("*.parquet"))).metadata[b"bigearthnet_txt"]
    )
    assert meta["redundancy"]["group_key"] == "patch"
    assert meta["redundancy"]["text_fields"] == ["input", "output"]


def test_group_key_patch_type(sample_release_file, tmp_path):
    convert_annotations(
        sample_release_file, tmp_path, AnnotationSettings(group_key="patch_type"), progress=False
    )
    t = read_all(tmp_path)
    pid = t["patch_id"][0].as_py()
    rows = t.filter(pc.and_(pc.equal(t["patch_id"], pid), pc.equal(t["type"], "binary"))).sort_by(
        "ID"
    )
    texts = [
        f"{i} {o}"
        for i, o in zip(rows["input"].to_pylist(), rows["output"].to_pylist(), strict=True)
    ]
    np.testing.assert_allclose(
        rows["redundancy_weight"].to_numpy(), redundancy.weights(texts), atol=1e-6
    )


def test_patch_index_mapping_fills_and_orders(sample_release_file, tmp_path, sample_release_table):
    patches = sorted(set(sample_release_table["patch_id"].to_pylist()), reverse=True)
    mapping = {p: 100 + i for i, p in enumerate(patches)}
    convert_annotations(sample_release_file, tmp_path, patch_index=mapping, progress=False)
    t = read_all(tmp_path)
    assert all(
        mapping[p] == i
        for p, i in zip(t["patch_id"].to_pylist(), t["patch_index"].to_pylist(), strict=True)
    )
    for f in (tmp_path / "data").rglob("*.parquet"):
        idx = pq.read_table(f)["patch_index"].to_numpy()
        assert (np.diff(idx) >= 0).all()
    del mapping[patches[0]]
    with pytest.raises(ValueError, match=f"not in the imagery, e.g. {patches[0]}"):
        convert_annotations(
            sample_release_file, tmp_path / "x", patch_index=mapping, progress=False
        )
    summary = convert_annotations(
        sample_release_file, tmp_path / "y", patch_index=mapping, progress=False, drop_missing=True
    )
    kept = read_all(tmp_path / "y")
    expected = sample_release_table.filter(
        pc.not_equal(sample_release_table["patch_id"], patches[0])
    )
    assert kept.select(list(RELEASE_COLUMNS)).sort_by("ID").equals(expected.sort_by("ID"))
    assert summary.dropped == {
        "patches": [patches[0]],
        "rows": sample_release_table.num_rows - expected.num_rows,
    }


def test_rerun_is_a_no_op_and_other_settings_need_overwrite(sample_release_file, tmp_path):
    first = convert_annotations(sample_release_file, tmp_path, progress=False)
    mtimes = {f: f.stat().st_mtime_ns for f in (tmp_path / "data").rglob("*.parquet")}
    again = convert_annotations(sample_release_file, tmp_path, progress=False)
    assert again.files == first.files
    assert mtimes == {f: f.stat().st_mtime_ns for f in (tmp_path / "data").rglob("*.parquet")}
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert_annotations(
            sample_release_file, tmp_path, AnnotationSettings(temperature=0.5), progress=False
        )
    convert_annotations(
        sample_release_file,
        tmp_path,
        AnnotationSettings(temperature=0.5),
        progress=False,
        overwrite=True,
    )
    assert read_summary_temperature(tmp_path) == 0.5


def read_summary_temperature(out: Path):
    return json.loads((out / ANNOTATION_SUMMARY).read_text())["settings"]["temperature"]


# --- bad input -------------------------------------------------------------------------------


def _write(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path, row_group_size=40)
    return path


def _row(table, type_, category=None):
    mask = pc.equal(table["type"], type_)
    if category:
        mask = pc.and_(mask, pc.equal(table["category"], category))
    i = pc.index(mask, True).as_py()
    return i, table["ID"][i].as_py()


def _replace(table, column, i, value):
    values = table[column].to_pylist()
    values[i] = value
    return table.set_column(
        table.schema.get_field_index(column),
        column,
        pa.array(values, table.schema.field(column).type),
    )


BAD_CELLS = [
    ("type", None, "type", "captions", "unknown value 'captions'"),
    ("split", None, "split", "dev", "unknown value 'dev'"),
    (
        "category",
        ("binary", None),
        "category",
        "colour",
        "category 'colour' is not valid for type 'binary'",
    ),
    ("category", ("captioning", None), "category", "none", "category 'none' is not valid"),
    ("output", ("bounding box", None), "output", "[0.64 0.0 1.0 0.71]", "'[0.64 0.0 1.0 0.71]'"),
    ("output", ("bounding box", None), "output", "[0.7 0.0, 0.6 0.71]", "out of order"),
    ("input", ("mcq", None), "input", "Which? a) x, b) y, c) z", "four options"),
    ("output", ("mcq", None), "output", "e", "'e'"),
    ("output", ("binary", None), "output", "Yes", "'Yes'"),
    ("input", ("bounding box", "point"), "input", "box at <point>(0.8; 0.2)</point>", "<point>"),
    ("input", ("bounding box", "reference"), "input", "Identify the pastures.", "<ref>"),
    ("input", ("captioning", None), "input", None, "value is null"),
]


@pytest.mark.parametrize("column,where,_,value,message", BAD_CELLS)
def test_bad_cell_names_column_and_row(
    sample_release_table, tmp_path, column, where, _, value, message
):
    t = sample_release_table
    i, row_id = _row(t, *where) if where else (7, t["ID"][7].as_py())
    src = _write(_replace(t, column, i, value), tmp_path / "bad.parquet")
    out = tmp_path / "out"
    with pytest.raises(ValueError) as err:
        convert_annotations(src, out, progress=False)
    text = str(err.value)
    assert str(src) in text and f"ID={row_id}" in text and f"{column!r}" in text and message in text
    assert (
        not (out / "data").exists()
        and not (out / TMP_DIR).exists()
        and not (out / ANNOTATION_SUMMARY).exists()
    )


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda t: t.drop_columns(["season"]), "missing column(s) 'season'"),
        (
            lambda t: t.append_column("extra", pa.array([1] * len(t))),
            "unexpected column(s) 'extra'",
        ),
        (
            lambda t: t.set_column(0, "ID", t["ID"].cast(pa.string())),
            "column 'ID' has type string, expected int64",
        ),
        (
            lambda t: t.set_column(8, "latitude", t["latitude"].cast(pa.float32())),
            "column 'latitude' has type float",
        ),
    ],
)
def test_bad_columns(sample_release_table, tmp_path, change, message):
    src = _write(change(sample_release_table), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        convert_annotations(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "data").exists()


def test_duplicate_id_and_patch_consistency(sample_release_table, tmp_path):
    t = sample_release_table
    dup = _replace(t, "ID", 3, t["ID"][4].as_py())
    with pytest.raises(
        ValueError, match=f"column 'ID': value {t['ID'][4].as_py()} occurs more than once"
    ):
        convert_annotations(_write(dup, tmp_path / "a.parquet"), tmp_path / "o1", progress=False)
    pid = t["patch_id"][0].as_py()
    other = "test" if t["split"][0].as_py() != "test" else "train"
    two = _replace(t, "split", 0, other)
    with pytest.raises(ValueError, match=f"patch {pid} appears in splits"):
        convert_annotations(_write(two, tmp_path / "b.parquet"), tmp_path / "o2", progress=False)
    s1 = _replace(t, "s1_name", 0, "S1A_other")
    with pytest.raises(ValueError, match=f"patch {pid} is paired with two s1_name"):
        convert_annotations(_write(s1, tmp_path / "c.parquet"), tmp_path / "o3", progress=False)


def test_not_parquet(tmp_path):
    src = tmp_path / "x.parquet"
    src.write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        convert_annotations(src, tmp_path / "out", progress=False)


def test_failed_rerun_keeps_previous_output(sample_release_table, sample_release_file, tmp_path):
    convert_annotations(sample_release_file, tmp_path, progress=False)
    before = read_all(tmp_path)
    bad = _write(_replace(sample_release_table, "split", 0, "dev"), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="unknown value 'dev'"):
        convert_annotations(bad, tmp_path, progress=False, overwrite=True)
    assert read_all(tmp_path).equals(before)
    assert not (tmp_path / TMP_DIR).exists()


# --- scale and the command line --------------------------------------------------------------


def test_full_size_generator_scaled_down(tmp_path):
    src = write_full_size(tmp_path / "full.parquet", rows=30_000, patches=1_500, row_groups=7)
    pf = pq.ParquetFile(src)
    assert pf.metadata.num_row_groups == 7 and pf.schema_arrow.equals(pq.read_schema(src))
    first = set(pf.read_row_group(0, columns=["patch_id"])["patch_id"].to_pylist())
    second = set(pf.read_row_group(1, columns=["patch_id"])["patch_id"].to_pylist())
    assert first & second, "some patch straddles two row groups"
    summary = convert_annotations(
        src,
        tmp_path / "out",
        AnnotationSettings(patches_per_bucket=300, rows_per_shard=2_000),
        progress=False,
    )
    total = sum(sum(v.values()) for v in summary.rows.values())
    assert total == pf.metadata.num_rows
    assert (
        read_all(tmp_path / "out")
        .select(list(RELEASE_COLUMNS))
        .sort_by("ID")
        .equals(pq.read_table(src).sort_by("ID"))
    )


def test_cli_convert_and_error(sample_release_file, sample_release_table, tmp_path, capsys):
    assert (
        main(
            [
                "convert",
                "--annotations",
                str(sample_release_file),
                "--out",
                str(tmp_path / "o"),
                "--quiet",
            ]
        )
        == 0
    )
    assert "binary" in capsys.readouterr().out
    bad = _write(_replace(sample_release_table, "type", 2, "caption"), tmp_path / "bad.parquet")
    assert (
        main(["convert", "--annotations", str(bad), "--out", str(tmp_path / "o2"), "--quiet"]) == 2
    )
    err = capsys.readouterr().err
    assert "unknown value 'caption'" in err and str(bad) in err
