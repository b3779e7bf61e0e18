"""Convert ``BigEarthNet.txt.parquet`` into per-task, per-split Parquet tables.

``convert_annotations(source, out_dir, ...)`` writes ``out_dir/data/<task>/<split>-NNNNN.parquet``
for ``task`` in ``captions``, ``binary``, ``mcq``, ``referring`` (``TABLE_TASKS``), every file in
``TABLE_SCHEMA``, rows sorted by patch (``patch_index`` when imagery gives one, else split then
``patch_id``) and then by ``ID``, a patch never split over two files. It also writes
``out_dir/annotations.json`` (row and patch counts, settings, the source's fingerprint).

Memory stays bounded whatever the file size:

1. *scan* reads only ``ID``, ``patch_id``, ``s1_name`` and ``split``, row group by row group, and
   checks that IDs are unique, that every patch has one ``s1_name`` and one split, and ranks the
   patches;
2. *spill* parses and validates each row group
   (:func:`bigearthnet_txt.conversion.annotation_table.parse_table`) and appends its rows to one
   of a few temporary buckets, each holding a range of patch ranks;
3. *write* loads one bucket at a time, sorts it, computes the redundancy weights of its (complete)
   patch groups and appends each task/split slice to its output shard.

Everything is written under ``out_dir/.annotations.tmp`` and moved into place only when complete,
so a failed or interrupted run leaves no partial tables; rerunning after an interruption redoes the
step, and rerunning after success is a no-op. ``workers > 1`` runs parsing and weighing on several
cores (:mod:`bigearthnet_txt.conversion.annotation_workers`), with byte-identical output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from bigearthnet_txt import redundancy
from bigearthnet_txt.conversion import annotation_workers as aw
from bigearthnet_txt.conversion.annotation_table import (
    AnnotationError,
    open_annotation_file,
    parse_table,
)
from bigearthnet_txt.conversion.output_folder import claim_output_folder
from bigearthnet_txt.schema import (
    ANNOTATION_SUMMARY,
    DATA_DIR,
    SHARD_PATTERN,
    SPLITS,
    STORE_ATTRS_KEY,
    TABLE_SCHEMA,
    TABLE_TASKS,
    TASK_OF_TYPE,
)

TMP_DIR = ".annotations.tmp"
GROUP_KEYS = ("patch", "patch_type")


@dataclass(frozen=True)
class AnnotationSettings:
    """How annotation tables are written and how redundancy weights are computed."""

    rows_per_shard: int = 250_000  # target rows per Parquet file (cut at patch boundaries)
    row_group_size: int = 10_000
    patches_per_bucket: int = 25_000  # patches sorted in memory at once
    group_key: str = "patch"  # redundancy groups: "patch" or "patch_type"
    text_fields: tuple[str, ...] = ("input", "output")  # joined with " " into the text scored
    temperature: float | None = None  # None: w = u / sum(u); else softmax(u / temperature)

    def __post_init__(self):
        if self.group_key not in GROUP_KEYS:
            raise ValueError(f"group_key must be one of {GROUP_KEYS}, got {self.group_key!r}")
        bad = [f for f in self.text_fields if f not in TABLE_SCHEMA.names]
        if bad or not self.text_fields:
            raise ValueError(f"text_fields must be columns of the table, got {self.text_fields!r}")

    def redundancy_metadata(self) -> dict:
        return {
            "definition": "u = 1 - sentence_bleu(text; other texts of the group) / 100 (sacrebleu "
            "defaults: 4-grams, 13a, exp smoothing); w = u / sum(u), or softmax(u / temperature)",
            "group_key": self.group_key,
            "text_fields": list(self.text_fields),
            "temperature": self.temperature,
        }


@dataclass
class AnnotationSummary:
    """What a conversion wrote: rows per task and split, patches per split, files."""

    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    patches: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    seconds: float = 0.0
    dropped: dict = field(default_factory=dict)  # {"patches": [...], "rows": n}: no imagery


def fingerprint(
    source: Path, settings: AnnotationSettings, patch_index: dict[str, int] | None
) -> dict:
    """Identifies a conversion: source file (name, size, mtime), settings and patch order."""
    stat = source.stat()
    order = hashlib.sha256()
    for pid, idx in sorted((patch_index or {}).items(), key=lambda kv: kv[1]):
        order.update(f"{pid}:{idx}\n".encode())
    return json.loads(
        json.dumps(
            {  # as it reads back from annotations.json
                "file": source.name,
                "bytes": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "settings": asdict(settings),
                "patch_order_sha256": order.hexdigest() if patch_index else None,
            }
        )
    )


# --- pass 1: scan ----------------------------------------------------------------------------


@dataclass
class PatchOrder:
    """Rank of every annotated patch (its position in the output order); the patches left out."""

    rank: dict[str, int]
    dropped: frozenset[str] = frozenset()  # annotated patches without imagery, left out


def scan(
    pf: pq.ParquetFile, source: str, patch_index: dict[str, int] | None, drop_missing: bool = False
) -> PatchOrder:
    """Check IDs and patch consistency; rank patches by ``patch_index`` or (split, patch_id).

    With ``patch_index``, an annotated patch missing from it is an error, or, with
    ``drop_missing``, left out (its rows are dropped and counted in the summary).
    """
    split_of: dict[str, str] = {}
    s1_of: dict[str, str] = {}
    ids = []
    for rg in range(pf.num_row_groups):
        t = pf.read_row_group(rg, columns=["ID", "patch_id", "s1_name", "split"])
        for column in t.column_names:
            if t[column].null_count:
                i = pc.index(pc.is_null(t[column]), True).as_py()
                raise AnnotationError(
                    f"{source}: row ID={t['ID'][i].as_py()}, column {column!r}: value is null"
                )
        ids.append(t["ID"].to_numpy())
        pairs = t.group_by(["patch_id", "s1_name", "split"]).aggregate([])
        for pid, s1, split in zip(
            pairs["patch_id"].to_pylist(),
            pairs["s1_name"].to_pylist(),
            pairs["split"].to_pylist(),
            strict=True,
        ):
            if split not in SPLITS:
                continue  # reported with its row ID by the spill pass
            if split_of.setdefault(pid, split) != split:
                raise AnnotationError(
                    f"{source}: patch {pid} appears in splits {split_of[pid]!r} and {split!r}; "
                    "splits must be disjoint by patch"
                )
            if s1_of.setdefault(pid, s1) != s1:
                raise AnnotationError(
                    f"{source}: patch {pid} is paired with two s1_name values "
                    f"({s1_of[pid]!r} and {s1!r}); patch_id and s1_name must be 1:1"
                )
    all_ids = np.sort(np.concatenate(ids)) if ids else np.zeros(0, np.int64)
    dup = np.flatnonzero(all_ids[1:] == all_ids[:-1])
    if len(dup):
        raise AnnotationError(
            f"{source}: column 'ID': value {all_ids[dup[0]]} occurs more than once"
        )
    s1_count = defaultdict(list)
    for pid, s1 in s1_of.items():
        s1_count[s1].append(pid)
    shared = next((v for v in s1_count.values() if len(v) > 1), None)
    if shared:
        raise AnnotationError(
            f"{source}: patches {', '.join(shared)} share one s1_name; pairs must be 1:1"
        )
    missing: list[str] = []
    if patch_index is not None:
        missing = sorted(p for p in split_of if p not in patch_index)
        if missing and not drop_missing:
            raise AnnotationError(
                f"{source}: {len(missing)} annotated patch(es) are not in the imagery, "
                f"e.g. {missing[0]}"
            )
        order = sorted((p for p in split_of if p in patch_index), key=patch_index.__getitem__)
    else:
        order = sorted(split_of, key=lambda p: (SPLITS.index(split_of[p]), p))
    return PatchOrder({p: r for r, p in enumerate(order)}, frozenset(missing))


# --- pass 2: spill ---------------------------------------------------------------------------


def _with_rank(table: pa.Table, order: PatchOrder, patch_index: dict[str, int] | None) -> pa.Table:
    ids = table["patch_id"].to_pylist()
    rank = np.fromiter((order.rank[p] for p in ids), np.int64, len(ids))
    if patch_index is not None:
        idx = np.fromiter((patch_index[p] for p in ids), np.int32, len(ids))
        table = table.set_column(
            TABLE_SCHEMA.get_field_index("patch_index"), "patch_index", pa.array(idx)
        )
    return table.append_column("_rank", pa.array(rank))


def _by_bucket(table: pa.Table, patches_per_bucket: int) -> Iterator[tuple[int, pa.Table]]:
    """``(bucket, rows)`` for each bucket (``_rank // patches_per_bucket``) that ``table`` has rows
    of, ascending; the rows keep their order. One stable sort, then one copy per bucket."""
    bucket = pc.divide(table["_rank"], patches_per_bucket).to_numpy()
    order = np.argsort(bucket, kind="stable")
    bounds = np.flatnonzero(np.diff(bucket[order], prepend=-1, append=-1))
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        yield int(bucket[order[start]]), table.take(order[start:end])


def spill(pf, source, order, patch_index, tmp: Path, settings, progress, parsed=None) -> list[Path]:
    """Append the parsed rows of every row group to the bucket of their patch rank; ``parsed``:
    the parsed row groups in order (default: parsed here, one after the other)."""
    if parsed is None:
        parsed = (parse_table(pf.read_row_group(rg), source) for rg in range(pf.num_row_groups))
    buckets: dict[int, pa.ipc.RecordBatchFileWriter] = {}
    paths = {}
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    bar = tqdm(
        total=pf.metadata.num_rows, desc="annotations: parse", unit="rows", disable=not progress
    )
    dropped = pa.array(sorted(order.dropped), pa.string())
    try:
        for table in parsed:
            if len(dropped):
                table = table.filter(pc.invert(pc.is_in(table["patch_id"], dropped)))
            table = _with_rank(table, order, patch_index)
            for b, part in _by_bucket(table, settings.patches_per_bucket):
                if b not in buckets:
                    paths[b] = tmp / f"bucket-{b:05d}.arrow"
                    buckets[b] = pa.ipc.new_file(paths[b], part.schema, options=options)
                buckets[b].write_table(part)
            bar.update(len(table))
    finally:
        for w in buckets.values():
            w.close()
        bar.close()
    return [paths[b] for b in sorted(paths)]


# --- pass 3: sort, weigh, write --------------------------------------------------------------


def add_redundancy(table: pa.Table, settings: AnnotationSettings) -> pa.Table:
    """Fill ``uniqueness`` and ``redundancy_weight`` for complete patch groups."""
    texts = table[settings.text_fields[0]]
    for f in settings.text_fields[1:]:
        texts = pc.binary_join_element_wise(texts, table[f], " ")
    groups = table["_rank"].to_numpy()
    if settings.group_key == "patch_type":
        type_code = pc.index_in(table["type"], pa.array(list(TASK_OF_TYPE))).to_numpy()
        groups = groups * len(TASK_OF_TYPE) + type_code
    codes, groups = np.unique(groups, return_inverse=True)
    u = redundancy.uniqueness_batch(texts.combine_chunks(), groups)
    w = redundancy.normalise(u, groups, len(codes), temperature=settings.temperature)
    table = table.set_column(
        TABLE_SCHEMA.get_field_index("uniqueness"), "uniqueness", pa.array(u.astype(np.float32))
    )
    return table.set_column(
        TABLE_SCHEMA.get_field_index("redundancy_weight"),
        "redundancy_weight",
        pa.array(w.astype(np.float32)),
    )


class ShardWriter:
    """Writes one task/split as ``<split>-NNNNN.parquet`` files, cutting only between patches.

    Rows are written in row groups of exactly ``row_group_size`` rows (the last of a file may be
    shorter), whatever the sizes of the tables handed to ``write``, so the files do not depend on
    how the rows were bucketed."""

    def __init__(self, folder: Path, split: str, settings: AnnotationSettings, schema: pa.Schema):
        self.folder, self.split, self.settings, self.schema = folder, split, settings, schema
        self.index, self.rows_in_file, self.writer = 0, 0, None
        self.files: list[Path] = []
        self.pending: list[pa.Table] = []  # rows of the next row group
        self.pending_rows = 0

    def _open(self):
        path = self.folder / SHARD_PATTERN.format(split=self.split, index=self.index)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd", write_statistics=True)
        self.files.append(path)
        self.index += 1
        self.rows_in_file = 0

    def _append(self, table: pa.Table) -> None:
        """Queue ``table`` for the open file, writing every complete row group."""
        size = self.settings.row_group_size
        self.pending.append(table)
        self.pending_rows += len(table)
        if self.pending_rows >= size:
            rows = pa.concat_tables(self.pending).combine_chunks()
            full = len(rows) // size * size
            self.writer.write_table(rows.slice(0, full), row_group_size=size)
            rest = rows.slice(full)
            self.pending, self.pending_rows = ([rest] if len(rest) else []), len(rest)

    def _flush(self) -> None:
        if self.pending_rows:
            rows = pa.concat_tables(self.pending).combine_chunks()
            self.writer.write_table(rows, row_group_size=self.settings.row_group_size)
        self.pending, self.pending_rows = [], 0

    def write(self, table: pa.Table, rank: np.ndarray):
        while len(table):
            if self.writer is None:
                self._open()
            room = self.settings.rows_per_shard - self.rows_in_file
            if len(table) <= room:
                cut = len(table)
            else:
                starts = np.flatnonzero(np.diff(rank)) + 1  # first row of each later patch
                fitting = starts[starts <= room]
                cut = (
                    int(fitting[-1])
                    if len(fitting)
                    else (int(starts[0]) if len(starts) else len(table))
                )
                if self.rows_in_file and not len(fitting):
                    cut = 0  # the next patch does not fit: start a new file
            if cut:
                self._append(table.slice(0, cut))
                self.rows_in_file += cut
                table, rank = table.slice(cut), rank[cut:]
            if len(table):
                self.close()

    def close(self):
        if self.writer is not None:
            self._flush()
            self.writer.close()
            self.writer = None


def weigh_bucket(path: Path, settings: AnnotationSettings) -> pa.Table:
    """The rows of one bucket sorted by patch rank and ``ID``, with redundancy weights."""
    table = pa.ipc.open_file(path).read_all()
    table = table.sort_by([("_rank", "ascending"), ("ID", "ascending")])
    return add_redundancy(table, settings)


def weigh_buckets(buckets: list[Path], settings: AnnotationSettings) -> Iterator[pa.Table]:
    """``weigh_bucket`` of every bucket, in order (one at a time, in this process)."""
    return (weigh_bucket(path, settings) for path in buckets)


def _by_split_and_type(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``table`` stably sorted by (split, type) in ``SPLITS`` × ``TASK_OF_TYPE`` order:
    ``(order [N] int64 row numbers, bounds [len(SPLITS) * len(TASK_OF_TYPE) + 1])``, the rows of
    (split ``s``, type ``t``) being ``order[bounds[s * types + t]:bounds[s * types + t + 1]]``."""
    types = len(TASK_OF_TYPE)
    split_code = pc.index_in(table["split"], pa.array(SPLITS)).to_numpy(zero_copy_only=False)
    type_code = pc.index_in(table["type"], pa.array(list(TASK_OF_TYPE)))
    part = split_code * types + type_code.to_numpy(zero_copy_only=False)
    order = np.argsort(part, kind="stable")
    return order, np.searchsorted(part[order], np.arange(len(SPLITS) * types + 1))


def write_tables(buckets, tmp: Path, settings, progress, weigh=weigh_buckets) -> tuple[dict, dict]:
    meta = {
        STORE_ATTRS_KEY.encode(): json.dumps(
            {"redundancy": settings.redundancy_metadata()}
        ).encode()
    }
    schema = TABLE_SCHEMA.with_metadata(meta)
    writers: dict[tuple[str, str], ShardWriter] = {}
    rows: dict[str, dict[str, int]] = {t: {s: 0 for s in SPLITS} for t in TABLE_TASKS}
    patches = dict.fromkeys(SPLITS, 0)  # a patch is in one bucket: count each bucket's
    tasks = list(TASK_OF_TYPE.values())
    try:
        weighed = iter(weigh(buckets, settings))
        for path in tqdm(buckets, desc="annotations: write", unit="bucket", disable=not progress):
            table = next(weighed)
            order, bounds = _by_split_and_type(table)
            for s, split in enumerate(SPLITS):
                first, end = bounds[s * len(tasks)], bounds[(s + 1) * len(tasks)]
                if end > first:
                    in_split = table["patch_id"].take(order[first:end])
                    patches[split] += pc.count_distinct(in_split).as_py()
                for code, task in enumerate(tasks):
                    first, end = bounds[s * len(tasks) + code], bounds[s * len(tasks) + code + 1]
                    if end == first:
                        continue
                    part = table.take(order[first:end])  # a copy: kept rows pin no bucket
                    rank = part["_rank"].to_numpy()
                    part = part.drop_columns(["_rank"]).cast(schema)
                    key = (task, split)
                    if key not in writers:
                        writers[key] = ShardWriter(tmp / DATA_DIR / task, split, settings, schema)
                    writers[key].write(part, rank)
                    rows[task][split] += len(part)
            path.unlink()
    finally:
        for w in writers.values():
            w.close()
    files = sorted(str(p.relative_to(tmp)) for w in writers.values() for p in w.files)
    return {"rows": rows, "patches": patches}, files


# --- entry point -----------------------------------------------------------------------------


def read_summary(out_dir: Path) -> dict | None:
    path = Path(out_dir) / ANNOTATION_SUMMARY
    return json.loads(path.read_text()) if path.exists() else None


def convert_annotations(
    source: Path | str,
    out_dir: Path | str,
    settings: AnnotationSettings = AnnotationSettings(),
    patch_index: dict[str, int] | None = None,
    progress: bool = True,
    overwrite: bool = False,
    weigh=weigh_buckets,
    drop_missing: bool = False,
    workers: int = 1,
) -> AnnotationSummary:
    """Convert the annotation file ``source`` into ``out_dir/data/<task>/<split>-NNNNN.parquet``.

    ``patch_index`` (patch_id → row of ``imagery.zarr``) fills the ``patch_index`` column and
    sets the row order; every annotated patch must be in it, unless ``drop_missing`` (used with
    the imagery's ``--skip-bad``) leaves the rows of the missing patches out and lists them in the
    summary's ``dropped``. Raises :class:`AnnotationError`
    (a ``ValueError``) naming the file, column and row ``ID`` on bad input, leaving ``out_dir``
    as it was. ``weigh(buckets, settings)`` yields each bucket's sorted, weighed rows in order
    (default ``weigh_buckets``; ``bigearthnet_txt.conversion.dask_engine.annotations`` weighs
    them on a cluster). ``workers > 1`` parses row groups and, with the default ``weigh``, weighs
    buckets in that many local processes
    (:mod:`bigearthnet_txt.conversion.annotation_workers`); the tables are byte-identical.
    The run holds ``out_dir`` exclusively (``output_folder.claim_output_folder``, lock only);
    while another run holds it, ``OutputFolderBusyError`` is raised at once.
    """
    source, out_dir = Path(source), Path(out_dir)
    if not source.is_file():
        raise FileNotFoundError(f"annotation file not found: {source}")
    with claim_output_folder(out_dir, "convert_annotations", check_foreign=False):
        return _convert_claimed(
            source, out_dir, settings, patch_index, progress, overwrite, weigh, drop_missing,
            workers,
        )  # fmt: skip


def _convert_claimed(
    source: Path,
    out_dir: Path,
    settings: AnnotationSettings,
    patch_index: dict[str, int] | None,
    progress: bool,
    overwrite: bool,
    weigh,
    drop_missing: bool,
    workers: int,
) -> AnnotationSummary:
    """The conversion of ``convert_annotations``, in an output folder that this run holds."""
    fp = fingerprint(source, settings, patch_index)
    previous = read_summary(out_dir)
    if previous is not None and (out_dir / DATA_DIR).is_dir():
        if previous.get("source") == fp:
            return AnnotationSummary(**previous)
        if not overwrite:
            raise FileExistsError(
                f"{out_dir / DATA_DIR} holds tables converted from other input or settings; "
                "pass overwrite=True (--overwrite) to replace them"
            )
    start = time.perf_counter()
    tmp = out_dir / TMP_DIR
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        pf = open_annotation_file(source)
        with contextlib.ExitStack() as stack:
            parsed = None
            spilled = settings  # bucket sizes do not change the output (ShardWriter)
            if workers > 1:  # the workers start and parse the first row groups during the scan
                pool = stack.enter_context(aw.worker_pool(workers))
                parsed = aw.parsed_row_groups(pool, str(source), pf.num_row_groups, workers)
                if weigh is weigh_buckets:
                    weigh = aw.ProcessBucketWeigher(pool, workers, weigh_bucket)
                    # workers + 1 buckets in memory at once: smaller ones
                    spilled = aw.bucket_settings(settings, workers)
            order = scan(pf, str(source), patch_index, drop_missing)
            buckets = spill(pf, str(source), order, patch_index, tmp, spilled, progress, parsed)
            counts, files = write_tables(buckets, tmp, settings, progress, weigh)
        summary = AnnotationSummary(
            rows=counts["rows"],
            patches=counts["patches"],
            files=files,
            settings=settings.redundancy_metadata(),
            source=fp,
            seconds=round(time.perf_counter() - start, 3),
            dropped={
                "patches": sorted(order.dropped),
                "rows": pf.metadata.num_rows
                - sum(sum(v.values()) for v in counts["rows"].values()),
            },
        )
        (tmp / ANNOTATION_SUMMARY).write_text(json.dumps(asdict(summary), indent=1))
        _publish(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def _publish(tmp: Path, out_dir: Path) -> None:
    """Move the finished tables into place: old summary out first, new summary in last."""
    (out_dir / ANNOTATION_SUMMARY).unlink(missing_ok=True)
    old = out_dir / DATA_DIR
    if old.exists():
        trash = out_dir / ".annotations.old"
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(old, trash)
        shutil.rmtree(trash)
    os.replace(tmp / DATA_DIR, old)
    os.replace(tmp / ANNOTATION_SUMMARY, out_dir / ANNOTATION_SUMMARY)
