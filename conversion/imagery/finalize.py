"""The last step of an imagery conversion: from the shards' progress records to the patch table,
the skip-bad report and the store's final attributes.

``finalize_store`` writes ``DIR/patches.parquet`` and ``DIR/imagery_report.json`` (each through a
temporary file renamed into place), then the complete store attributes (band statistics merged
over the train rows of every shard, sources, codecs, layout), and last drops the progress and
staging folders. When every selected patch turned out bad (``--skip-bad``) there is nothing to
store: the report is written, the unfinished store removed (a rerun with other options starts
afresh) and ``ImageryInputError`` (kind ``no-usable-patches``) names the report.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bigearthnet_txt.conversion.imagery.assembler import STATS_SPLIT, band_sums
from bigearthnet_txt.conversion.imagery.codecs import describe
from bigearthnet_txt.conversion.imagery.errors import ImageryInputError
from bigearthnet_txt.conversion.imagery.metadata import PatchPlan
from bigearthnet_txt.conversion.imagery.passes import PASSES
from bigearthnet_txt.conversion.imagery.sources import is_archive
from bigearthnet_txt.conversion.imagery.store_writer import (
    TEMP_SUFFIX,
    StoreWriter,
    replace_synced,
    unique_temp,
    write_json_atomic,
)
from bigearthnet_txt.schema import PATCH_SCHEMA, PATCH_TABLE, S1_BANDS, S2_BANDS

REPORT_FILE = "imagery_report.json"
Records = dict[str, dict[int, dict]]  # pass name -> shard -> progress record


def drop_from_stats(writer: StoreWriter, records: Records, plan: PatchPlan, dropped: set[int]):
    """Take the train patches that another pass made bad (dropped from the patch table) out of the
    shard statistics of ``records``: their rows are read back from the store (few: bad patches)."""
    group = writer.open()
    for pass_name, per_shard in records.items():
        for record in per_shard.values():
            rows = [
                i
                for i in record["present"]
                if i in dropped and plan.split_of_index[i] == STATS_SPLIT
            ]
            for array in PASSES[pass_name].arrays if rows else ():
                if not array.bands:
                    continue
                block = np.stack([group[array.name][i] for i in rows])
                for band, (count, total, squares) in band_sums(array, block).items():
                    acc = record["stats"][band]
                    record["stats"][band] = [acc[0] - count, acc[1] - total, acc[2] - squares]


def merge_stats(records: Records) -> dict[str, dict[str, float]]:
    """Population ``{band: {mean, std, count}}`` from the shards'
    ``[count, sum, sum of squares]``."""
    sums: dict[str, list[float]] = {}
    for per_shard in records.values():
        for record in per_shard.values():
            for band, (count, total, squares) in record["stats"].items():
                acc = sums.setdefault(band, [0, 0.0, 0.0])
                acc[0] += count
                acc[1] += total
                acc[2] += squares
    stats = {}
    for band in (*S2_BANDS, *S1_BANDS):
        if band in sums and sums[band][0]:
            count, total, squares = sums[band]
            mean = total / count
            stats[band] = {
                "mean": mean,
                "std": math.sqrt(max(squares / count - mean * mean, 0.0)),
                "count": count,
            }
    return stats


def patch_table(plan: PatchPlan, records: Records, bad: set[int]) -> pa.Table:
    """The ``PATCH_SCHEMA`` table of the planned patches less ``bad``, in store order."""
    present = {p: {i for r in recs.values() for i in r["present"]} for p, recs in records.items()}
    profiles: dict[int, list] = {}
    for pass_name in ("reference_map", "s1", "s2"):  # S2's 10 m grid wins
        for record in records.get(pass_name, {}).values():
            profiles.update({int(i): p for i, p in record["profiles"].items() if p[1] is not None})
    keep = pa.array([index not in bad for index in plan.indices.tolist()], pa.bool_())
    rows = plan.rows.filter(keep)
    indices = rows["patch_index"].to_pylist()
    columns = {
        name: rows[name]
        for name in ("patch_index", "patch_id", "s1_name", "split", "labels", "country")
    }
    columns.update(
        {
            "contains_seasonal_snow": rows["contains_seasonal_snow"],
            "contains_cloud_or_shadow": rows["contains_cloud_or_shadow"],
            "has_s1": [i in present.get("s1", ()) for i in indices],
            "crs": [profiles.get(i, [None, None])[0] for i in indices],
            "transform": [profiles.get(i, [None, None])[1] for i in indices],
            "has_s2": [i in present.get("s2", ()) for i in indices],
            "has_reference_map": [i in present.get("reference_map", ()) for i in indices],
        }
    )
    return pa.Table.from_pydict(columns, schema=PATCH_SCHEMA)


def source_record(pass_name: str, path: Path, md5: str | None) -> dict:
    """One entry of the store's ``sources``/``metadata_files`` attributes."""
    return {
        "pass": pass_name,
        "path": str(path),
        "kind": "tar.zst" if is_archive(path) else "folder",
        "bytes": path.stat().st_size if path.is_file() else None,
        "md5": md5,
    }


def store_attributes(
    writer: StoreWriter,
    plan: PatchPlan,
    records: Records,
    n_patches: int,
    sources: Mapping[str, Sequence[Path]],
    metadata_files: Sequence[Path],
    md5s: Mapping[str, str],
) -> dict:
    """The complete store attributes (``StoreWriter.finalize`` adds version, state, settings)."""
    return {
        "arrays": {
            a.name: {
                "bands": list(a.bands),
                "resolution_m": a.resolution_m,
                "units": a.units,
                "nodata": a.nodata,
                "dtype": a.dtype,
                "size": a.size,
            }
            for a in writer.arrays
        },
        "s2_band_order": list(S2_BANDS),
        "stats": merge_stats(records),
        "stats_split": STATS_SPLIT,
        "stats_note": "population mean/std per band over the train rows; S2 nodata 0 and "
        "non-finite S1 excluded; S1 in dB",
        "sources": [source_record(n, p, md5s.get(str(p))) for n, ps in sources.items() for p in ps],
        "metadata_files": [
            source_record("metadata", Path(m), md5s.get(str(m))) for m in metadata_files
        ],
        "codecs": describe(writer.preset),
        "chunk_patches": 1,
        "shard_patches": writer.shard_size,
        "n_rows": plan.n_rows,
        "n_patches": n_patches,
        "split_ranges": {k: list(v) for k, v in plan.split_ranges.items()},
        "patch_table": PATCH_TABLE,
    }


def remove_unfinished_store(writer: StoreWriter) -> None:
    """Remove the store, its progress and staging folders (the report and the rest of DIR stay)."""
    for folder in (writer.path, writer.progress_dir, writer.staging_dir):
        shutil.rmtree(folder, ignore_errors=True)


def finalize_store(
    writer: StoreWriter,
    plan: PatchPlan,
    source_errors: list[dict],
    sources: Mapping[str, Sequence[Path]],
    metadata_files: Sequence[Path],
    md5s: Mapping[str, str],
) -> tuple[int, list[dict]]:
    """Write the patch table, the report and the final attributes; returns ``(n_patches, bad)``."""
    out_dir = writer.out_dir
    records = {name: writer.records(name) for name in sources}
    bad = source_errors + [b for recs in records.values() for r in recs.values() for b in r["bad"]]
    bad_indices = {b["patch_index"] for b in bad if "patch_index" in b}
    table = patch_table(plan, records, bad_indices)
    report = {"bad": bad, "n_patches": table.num_rows}
    if table.num_rows == 0:
        write_json_atomic(out_dir / REPORT_FILE, report)
        remove_unfinished_store(writer)
        raise ImageryInputError(
            f"{out_dir}: every selected patch is bad ({len(bad)} recorded in "
            f"{out_dir / REPORT_FILE}); nothing was stored, fix the inputs or select other patches",
            kind="no-usable-patches",
            path=str(out_dir / REPORT_FILE),
        )
    drop_from_stats(writer, records, plan, bad_indices)
    tmp = unique_temp(out_dir / PATCH_TABLE)
    pq.write_table(table, tmp)
    replace_synced(tmp, out_dir / PATCH_TABLE)
    write_json_atomic(out_dir / REPORT_FILE, report)
    for name in (PATCH_TABLE, REPORT_FILE):  # temporary files of a run killed while writing them
        for stale in out_dir.glob(f"{name}.*{TEMP_SUFFIX}"):
            stale.unlink(missing_ok=True)
    writer.finalize(
        store_attributes(writer, plan, records, table.num_rows, sources, metadata_files, md5s)
    )
    return table.num_rows, bad
