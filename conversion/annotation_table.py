"""Validate release rows and add the parsed columns, one Arrow table (a row group) at a time.

``parse_table(table, source)`` takes rows in ``RELEASE_SCHEMA`` and returns them in
``TABLE_SCHEMA`` order: the 13 release columns unchanged, then ``patch_index`` (null here),
``options``, ``answer_index``, ``answer_bool``, ``box``, ``point``, ``ref`` (null where a row's
type does not have them) and ``uniqueness``/``redundancy_weight`` (null, filled per patch group
later). The regular expressions are those of :mod:`bigearthnet_txt.annotations`, applied with
``pyarrow.compute``; the first row that fails raises ``ValueError`` naming the file, the column,
the row ``ID`` and the offending text (the message of the matching Python parser).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bigearthnet_txt import annotations as ann
from bigearthnet_txt.errors import InputError
from bigearthnet_txt.schema import (
    BINARY_ANSWERS,
    BOX_TYPE,
    CATEGORIES_BY_TYPE,
    CATEGORY_POINT,
    CATEGORY_REFERENCE,
    MCQ_LETTERS,
    POINT_TYPE,
    RELEASE_SCHEMA,
    SPLITS,
    TABLE_SCHEMA,
    TYPE_BINARY,
    TYPE_BOX,
    TYPE_MCQ,
    TYPES,
)

#: Columns naming a patch (they become folder and file names): ``NAME_PATTERN`` in full.
NAME_COLUMNS = ("patch_id", "s1_name")
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
_STRING_LIKE = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)


class AnnotationError(InputError):
    """Bad input in the annotation file; the message names the file, column and row ID."""


def check_schema(schema: pa.Schema, source: str) -> None:
    """Raise if columns are missing, extra or of a type that cannot hold the release's values."""
    names = set(schema.names)
    missing = [c for c in RELEASE_SCHEMA.names if c not in names]
    extra = [c for c in schema.names if c not in RELEASE_SCHEMA.names]
    if missing:
        raise AnnotationError(f"{source}: missing column(s) {', '.join(map(repr, missing))}")
    if extra:
        raise AnnotationError(f"{source}: unexpected column(s) {', '.join(map(repr, extra))}")
    for expected in RELEASE_SCHEMA:
        actual = schema.field(expected.name).type
        if pa.types.is_dictionary(actual):
            actual = actual.value_type
        ok = actual == expected.type or (
            pa.types.is_string(expected.type) and any(is_(actual) for is_ in _STRING_LIKE)
        )
        if not ok:
            raise AnnotationError(
                f"{source}: column {expected.name!r} has type {actual}, expected {expected.type}"
            )


def _normalise(table: pa.Table | pa.RecordBatch) -> pa.RecordBatch:
    """Release columns in release order with the release's exact types, as one record batch."""
    return pa.RecordBatch.from_arrays(
        [
            pa.array(table[c]).cast(RELEASE_SCHEMA.field(c).type)
            if isinstance(table[c], pa.Array)
            else table[c].combine_chunks().cast(RELEASE_SCHEMA.field(c).type)
            for c in RELEASE_SCHEMA.names
        ],
        schema=RELEASE_SCHEMA,
    )


def _fail(
    table: pa.RecordBatch, bad: pa.Array, source: str, column: str, message: Callable[[int], str]
):
    """Raise for the first ``True`` in ``bad`` (a boolean mask), if any."""
    bad = pc.fill_null(bad, False)
    if not pc.any(bad).as_py():
        return
    i = int(pc.index(bad, True).as_py())
    row_id = table["ID"][i].as_py()
    raise AnnotationError(f"{source}: row ID={row_id}, column {column!r}: {message(i)}")


def _parse_error(parser: Callable[[str], object], text: object) -> str:
    try:
        parser(text)
    except ValueError as err:
        return str(err)
    return f"does not match the release format: {text!r}"


def validate(table: pa.RecordBatch, source: str) -> None:
    """Nulls, unknown ``type``/``category``/``split`` values, type/category mismatches and patch
    names (``patch_id``, ``s1_name``) with characters other than ``NAME_PATTERN``'s (e.g. NUL)."""
    for column in RELEASE_SCHEMA.names:
        if table[column].null_count:
            _fail(table, pc.is_null(table[column]), source, column, lambda i: "value is null")
    for column, allowed in (("type", TYPES), ("split", SPLITS)):
        _fail(
            table,
            pc.invert(pc.is_in(table[column], pa.array(allowed))),
            source,
            column,
            lambda i, c=column, a=allowed: (
                f"unknown value {table[c][i].as_py()!r} (allowed: {', '.join(a)})"
            ),
        )
    for column in NAME_COLUMNS:
        _fail(
            table,
            pc.invert(pc.match_substring_regex(table[column], NAME_PATTERN)),
            source,
            column,
            lambda i, c=column: (
                f"not a patch name: {table[c][i].as_py()!r} (allowed: letters, digits, '_', '.', "
                "'-')"
            ),
        )
    pairs = [f"{t}|{c}" for t, cats in CATEGORIES_BY_TYPE.items() for c in cats]
    key = pc.binary_join_element_wise(table["type"], table["category"], "|")
    _fail(
        table,
        pc.invert(pc.is_in(key, pa.array(pairs))),
        source,
        "category",
        lambda i: (
            f"category {table['category'][i].as_py()!r} is not valid for type "
            f"{table['type'][i].as_py()!r} (allowed: "
            f"{', '.join(CATEGORIES_BY_TYPE[table['type'][i].as_py()])})"
        ),
    )


def _extract(table, column, mask, pattern, source, parser, fields):
    """Regex-extract ``fields`` from ``column`` for rows in ``mask``; raise on the first miss.

    The pattern runs on the rows in ``mask`` only; the matches are put back in row order."""
    rows = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), bool))
    position = np.full(len(table), -1, np.int64)
    position[rows] = np.arange(len(rows))
    m = pc.extract_regex(table[column].take(pa.array(rows)), pattern).take(
        pa.array(position, mask=position < 0)
    )
    missed = pc.and_(mask, pc.is_null(m))
    _fail(table, missed, source, column, lambda i: _parse_error(parser, table[column][i].as_py()))
    return [pc.if_else(mask, pc.struct_field(m, f), pa.scalar(None, pa.string())) for f in fields]


def _floats(strings: list[pa.Array]) -> np.ndarray:
    """Columns of decimal strings → ``[N, len(strings)]`` float64 (NaN where null)."""
    return np.stack([s.cast(pa.float64()).to_numpy(zero_copy_only=False) for s in strings], axis=1)


def _fixed_list(values: np.ndarray, mask: np.ndarray, type_: pa.DataType) -> pa.Array:
    """``[N, k]`` values → fixed-size list array of float32, null where ``mask`` is False."""
    flat = pa.array(np.nan_to_num(values).astype(np.float32).ravel(), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, type=type_, mask=pa.array(~mask))


def _check_coordinates(table, coords, mask, source, column, parser, boxes: bool):
    bad = np.zeros(len(table), bool)
    valid = coords[mask]
    rows = np.flatnonzero(mask)
    out_of_range = ((valid < 0) | (valid > 1)).any(axis=1)
    if boxes:
        out_of_range |= (valid[:, 2] < valid[:, 0]) | (valid[:, 3] < valid[:, 1])
    bad[rows[out_of_range]] = True
    _fail(
        table,
        pa.array(bad),
        source,
        column,
        lambda i: _parse_error(parser, table[column][i].as_py()),
    )


def parse_table(table: pa.Table | pa.RecordBatch, source: str) -> pa.Table:
    """Validate one batch of release rows and return it in ``TABLE_SCHEMA`` with parsed columns."""
    check_schema(table.schema, source)
    table = _normalise(table)
    validate(table, source)
    n = len(table)
    type_ = table["type"]
    is_binary = pc.equal(type_, TYPE_BINARY)
    is_mcq = pc.equal(type_, TYPE_MCQ)
    is_box = pc.equal(type_, TYPE_BOX)
    is_point = pc.and_(is_box, pc.equal(table["category"], CATEGORY_POINT))
    is_ref = pc.and_(is_box, pc.equal(table["category"], CATEGORY_REFERENCE))

    # binary: yes/no
    _fail(
        table,
        pc.and_(is_binary, pc.invert(pc.is_in(table["output"], pa.array(list(BINARY_ANSWERS))))),
        source,
        "output",
        lambda i: _parse_error(ann.parse_binary, table["output"][i].as_py()),
    )
    answer_bool = pc.if_else(
        is_binary, pc.equal(table["output"], "yes"), pa.scalar(None, pa.bool_())
    )

    # mcq: four inline options and a bare letter
    _fail(
        table,
        pc.and_(is_mcq, pc.invert(pc.is_in(table["output"], pa.array(MCQ_LETTERS)))),
        source,
        "output",
        lambda i: _parse_error(ann.answer_index, table["output"][i].as_py()),
    )
    letters = pc.if_else(is_mcq, table["output"], pa.scalar(None, pa.string()))
    answer_index = pc.index_in(letters, pa.array(MCQ_LETTERS)).cast(pa.int8())
    opts = _extract(table, "input", is_mcq, ann.MCQ_PATTERN, source, ann.parse_mcq, MCQ_LETTERS)
    mcq_rows = np.asarray(is_mcq.to_numpy(zero_copy_only=False), bool)
    option_values = pa.concat_arrays(
        [o.filter(is_mcq) for o in opts]
    )  # a-block, b-block, …: reorder to row-major below
    k = int(mcq_rows.sum())
    order = (np.arange(4)[None, :] * k + np.arange(k)[:, None]).ravel()
    offsets = np.zeros(n + 1, np.int32)
    offsets[1:] = np.cumsum(mcq_rows * 4)
    options = pa.ListArray.from_arrays(
        pa.array(offsets), option_values.take(pa.array(order)), mask=pa.array(~mcq_rows)
    )

    # bounding boxes: "[x1 y1, x2 y2]" in output; point / ref in input
    box_rows = np.asarray(is_box.to_numpy(zero_copy_only=False), bool)
    box_str = _extract(
        table, "output", is_box, ann.BOX_PATTERN, source, ann.parse_box, ("x1", "y1", "x2", "y2")
    )
    boxes = _floats(box_str)
    _check_coordinates(table, boxes, box_rows, source, "output", ann.parse_box, boxes=True)
    point_rows = np.asarray(is_point.to_numpy(zero_copy_only=False), bool)
    point_str = _extract(
        table, "input", is_point, ann.POINT_PATTERN, source, ann.parse_point, ("x", "y")
    )
    points = _floats(point_str)
    _check_coordinates(table, points, point_rows, source, "input", ann.parse_point, boxes=False)
    (ref,) = _extract(table, "input", is_ref, ann.REF_PATTERN, source, ann.parse_ref, ("ref",))

    parsed = {
        "patch_index": pa.nulls(n, pa.int32()),
        "options": options,
        "answer_index": answer_index,
        "answer_bool": answer_bool,
        "box": _fixed_list(boxes, box_rows, BOX_TYPE),
        "point": _fixed_list(points, point_rows, POINT_TYPE),
        "ref": ref,
        "uniqueness": pa.nulls(n, pa.float32()),
        "redundancy_weight": pa.nulls(n, pa.float32()),
    }
    return pa.Table.from_arrays(
        [*table.columns, *(parsed[f.name] for f in TABLE_SCHEMA if f.name in parsed)],
        schema=TABLE_SCHEMA,
    )


def open_annotation_file(source: Path) -> pq.ParquetFile:
    """The Parquet file ``source``; ``AnnotationError`` when it is missing, unreadable or empty."""
    if not source.is_file():
        raise FileNotFoundError(f"{source}: annotation file not found")
    try:
        pf = pq.ParquetFile(source)
    except (pa.ArrowInvalid, OSError) as err:
        raise AnnotationError(
            f"{source}: not a readable Parquet file ({err}); expected BigEarthNet.txt.parquet "
            "or a file in its schema"
        ) from None
    check_schema(pf.schema_arrow, str(source))
    if pf.metadata.num_rows == 0:
        raise AnnotationError(
            f"{source}: the file has no rows; expected the annotation rows of BigEarthNet.txt"
        )
    return pf
