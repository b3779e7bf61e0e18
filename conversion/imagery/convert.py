"""Orchestration: ``convert_imagery(...)`` turns BigEarthNet imagery into ``DIR/imagery.zarr`` and
``DIR/patches.parquet``; ``main`` runs it alone from the command line (flags in ``arguments``).

Order of work: verify checksums (``--verify``) → read metadata and plan the patch order → one pass
per given modality (S2, then S1, then reference maps), each streaming its sources once, decoding
GeoTIFFs in ``workers`` processes and writing whole shards → finalize (patch table, skip-bad report
``DIR/imagery_report.json``, store attributes with statistics and settings). Killed at any point, the
same command resumes at the first shard without a progress marker; a finished store is left as is.
A resumed pass streaming an archive again checks the raw bytes of the shards it skips against their
markers' ``source_md5`` and writes again those built from other bytes (e.g. a corrupt archive whose
run was killed before the end of its stream revealed it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from bigearthnet_txt.conversion.imagery.arguments import add_imagery_arguments, run_imagery
from bigearthnet_txt.conversion.imagery.assembler import (
    STATS_SPLIT,
    ShardAssembler,
    band_sums,
    combine_digests,
)
from bigearthnet_txt.conversion.imagery.checksums import read_checksum_list, verify_files
from bigearthnet_txt.conversion.imagery.codecs import (
    DEFAULT_PRESET,
    DEFAULT_SHARD_SIZE,
    PRESETS,
    describe,
)
from bigearthnet_txt.conversion.imagery.duplicates import PatchOrigins
from bigearthnet_txt.conversion.imagery.errors import ImageryInputError
from bigearthnet_txt.conversion.imagery.metadata import (
    PatchPlan,
    annotation_splits,
    load_metadata,
    plan_patches,
)
from bigearthnet_txt.conversion.imagery.passes import PASSES, Pass, decode_batch
from bigearthnet_txt.conversion.imagery.sources import (
    INTEGRITY_KINDS,
    is_archive,
    iter_source,
    patch_digest,
)
from bigearthnet_txt.conversion.imagery.store_writer import (
    PROGRESS_DIR,
    TEMP_SUFFIX,
    StoreWriter,
    replace_synced,
    unique_temp,
    write_json_atomic,
)
from bigearthnet_txt.conversion.remote import as_source, expect_md5
from bigearthnet_txt.schema import (
    IMAGERY_STORE,
    PATCH_SCHEMA,
    PATCH_TABLE,
    S1_BANDS,
    S2_BANDS,
    ImageryArray,
)

REPORT_FILE = "imagery_report.json"
DECODE_BATCH = 32  # patches per task sent to a decoding process
METADATA_NAMES = ("metadata.parquet", "metadata_for_patches_with_snow_cloud_or_shadow.parquet")


class IncompleteConversionError(FileNotFoundError):
    """Planned shards of a pass have no progress marker when the store is to be finalized."""


@dataclass
class ImageryResult:
    """Outcome of ``convert_imagery``: patch counts, bad-patch records, timing."""

    out_dir: Path
    n_patches: int
    bad: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    already_complete: bool = False
    split_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def patches_per_second(self) -> float:
        return self.n_patches / self.seconds if self.seconds else 0.0


def find_metadata(sources: Iterable[Path | str]) -> list[Path]:
    """Metadata parquets found beside or inside the given sources (first folder that has them)."""
    for source in sources:
        for folder in (Path(source), Path(source).parent):
            found = [folder / n for n in METADATA_NAMES if (folder / n).is_file()]
            if found:
                return found
    return []


def _plan(metadata_files, annotations, patch_ids, all_patches, shard_size) -> PatchPlan:
    metadata = load_metadata(metadata_files)
    splits: dict[str, str] | None = None
    for file in annotations or ():
        for pid, split in annotation_splits(file).items():
            splits = splits if splits is not None else {}
            if splits.get(pid, split) != split:
                raise ValueError(
                    f"{file}: patch {pid} has split {split!r} here and {splits[pid]!r} elsewhere"
                )
            splits[pid] = split
    if patch_ids is None and all_patches:
        patch_ids = metadata["patch_id"].to_pylist()
    if patch_ids is None and splits is None:
        raise ValueError(
            "choose the patches: give annotation tables, --all-patches or a patch list"
        )
    return plan_patches(metadata, shard_size, splits=splits, patch_ids=patch_ids)


def _missing_error(spec: Pass, plan: PatchPlan, sources: Sequence[Path]):
    names = ", ".join(str(s) for s in sources)
    s1_names = {index: name for name, index in plan.by_s1_name.items()}

    def build(indices: list[int]) -> ImageryInputError:
        first = plan.name_of_index[indices[0]]
        others = [plan.name_of_index[i] for i in indices[1:6]]
        more = f"; also missing: {', '.join(others)}" if others else ""
        more += f" and {len(indices) - 6} more" if len(indices) > 6 else ""
        if spec.name == "s1":
            s1 = s1_names[indices[0]]
            text = (
                f"S2 patch {first}: its S1 pair {s1} is missing from the S1 sources ({names}){more}"
            )
        elif spec.name == "s2":
            text = f"patch {first} is selected (annotations/patch list) but not in the S2 imagery ({names}){more}"
        else:
            text = f"patch {first}: no reference map in ({names}){more}"
        return ImageryInputError(text, kind=spec.missing_kind, patch=first)

    return build


def _prefetched(iterable: Iterable, depth: int = 64) -> Iterator:
    """Iterate ``iterable`` in a background thread (reading/decompressing overlaps the encoding,
    which releases the GIL), at most ``depth`` items ahead; its exceptions are re-raised here."""
    items: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put((end, None))
        except Exception as err:  # noqa: BLE001 - re-raised in the consuming thread
            items.put((end, err))

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item, err = items.get()
            if err is not None:
                raise err
            if item is end:
                return
            yield item
    finally:
        stop.set()


def discard_untrusted(writer: StoreWriter, spec: Pass, err: ImageryInputError) -> ImageryInputError:
    """The error to raise for a source that failed its integrity check (``INTEGRITY_KINDS``), after
    removing the pass's finished shards: they may hold patches decoded from the bad bytes."""
    shards = writer.discard_pass(spec.name, [a.name for a in spec.arrays])
    return ImageryInputError(
        f"{err}; the {len(shards)} finished shard(s) of the {spec.name} pass were discarded, "
        "a rerun with a sound source redoes the pass",
        kind=err.kind,
        path=err.path,
        patch=err.patch,
    )


def _run_pass(
    spec: Pass,
    sources: Sequence[Path],
    plan: PatchPlan,
    writer: StoreWriter,
    *,
    allow_missing: bool,
    skip_bad: bool,
    pool: ProcessPoolExecutor | None,
    workers: int,
    progress: bool,
    source_errors: list[dict],
) -> None:
    done = writer.records(spec.name)
    pending = {s: set(rows) for s, rows in plan.shard_rows().items() if s not in done}
    if not pending:
        return
    writer.open()
    to_check = {s: r["source_md5"] for s, r in done.items() if "source_md5" in r}
    digests: dict[int, str | None] = {}
    assembler = ShardAssembler(
        spec, writer, pending, plan.split_of_index, skip_bad=skip_bad, digests=digests
    )
    lookups = [getattr(plan, name) for name in spec.lookups]
    total = sum(len(v) for v in pending.values())
    bar = tqdm(
        total=total, unit="patch", desc=f"imagery {spec.name}", disable=not progress, smoothing=0.05
    )
    in_flight: deque[Future] = deque()
    batch: list[tuple] = []
    submitted: set[int] = set()
    origins = PatchOrigins(spec.name)

    def take(decoded: list) -> None:
        for patch in decoded:
            assembler.add(patch)
        bar.update(len(decoded))

    def submit() -> None:
        if batch:
            in_flight.append(pool.submit(decode_batch, spec.name, list(batch)))
            batch.clear()
        while in_flight and (in_flight[0].done() or len(in_flight) > 2 * workers):
            take(in_flight.popleft().result())

    def drain() -> None:
        submit()
        while in_flight:
            take(in_flight.popleft().result())

    try:
        for source in sources:
            bar.set_postfix_str(source.name)
            try:
                for patch in _prefetched(iter_source(source)):
                    index = next((lk[patch.name] for lk in lookups if patch.name in lk), None)
                    if index is not None:
                        origins.check(index, patch.name, source)
                    if index is None or index in submitted:
                        continue
                    if index // plan.shard_size in to_check:
                        digests.setdefault(index, patch_digest(patch))
                        continue
                    if not assembler.wants(index):
                        continue
                    submitted.add(index)
                    digests[index] = patch_digest(patch)
                    item = (patch, index, plan.name_of_index[index])
                    if pool is None:
                        take(decode_batch(spec.name, [item]))
                        continue
                    batch.append(item)
                    if len(batch) >= DECODE_BATCH:
                        submit()
                drain()
            except ImageryInputError as err:
                if err.kind in INTEGRITY_KINDS:
                    raise discard_untrusted(writer, spec, err) from err
                if not skip_bad:
                    raise
                drain()
                source_errors.append({**err.to_record(), "pass": spec.name})
        assembler.finish(None if allow_missing else _missing_error(spec, plan, sources))
    finally:
        bar.close()
    stale = [
        shard
        for shard, recorded in to_check.items()
        if combine_digests({i: d for i, d in digests.items() if i // plan.shard_size == shard})
        != recorded
    ]
    if stale:
        print(f"imagery {spec.name}: shards {stale} were built from other source bytes; writing them again",
              file=sys.stderr)  # fmt: skip
        for shard in stale:
            writer.discard_shard(spec.name, shard, [a.name for a in spec.arrays])
        _run_pass(
            spec, sources, plan, writer, allow_missing=allow_missing, skip_bad=skip_bad, pool=pool,
            workers=workers, progress=progress, source_errors=source_errors,
        )  # fmt: skip


def _drop_from_stats(
    writer: StoreWriter, records: dict[str, dict[int, dict]], plan: PatchPlan, dropped: set[int]
) -> None:
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


def _merge_stats(records: dict[str, dict[int, dict]]) -> dict[str, dict[str, float]]:
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


def _patch_table(plan: PatchPlan, records: dict[str, dict[int, dict]], bad: set[int]) -> pa.Table:
    present = {p: {i for r in recs.values() for i in r["present"]} for p, recs in records.items()}
    profiles: dict[int, list] = {}
    for pass_name in ("reference_map", "s1", "s2"):  # S2's 10 m grid wins
        for record in records.get(pass_name, {}).values():
            profiles.update({int(i): p for i, p in record["profiles"].items() if p[1] is not None})
    rows = plan.rows
    keep = [i for i, index in enumerate(plan.indices.tolist()) if index not in bad]
    rows = rows.take(keep)
    indices = rows["patch_index"].to_pylist()
    columns = {
        "patch_index": rows["patch_index"],
        "patch_id": rows["patch_id"],
        "s1_name": rows["s1_name"],
        "split": rows["split"],
        "labels": rows["labels"],
        "country": rows["country"],
        "contains_seasonal_snow": rows["contains_seasonal_snow"],
        "contains_cloud_or_shadow": rows["contains_cloud_or_shadow"],
        "has_s1": [i in present.get("s1", ()) for i in indices],
        "crs": [profiles.get(i, [None, None])[0] for i in indices],
        "transform": [profiles.get(i, [None, None])[1] for i in indices],
        "has_s2": [i in present.get("s2", ()) for i in indices],
        "has_reference_map": [i in present.get("reference_map", ()) for i in indices],
    }
    return pa.Table.from_pydict(columns, schema=PATCH_SCHEMA)


def _source_record(pass_name: str, path: Path, md5: str | None) -> dict:
    return {
        "pass": pass_name,
        "path": str(path),
        "kind": "tar.zst" if is_archive(path) else "folder",
        "bytes": path.stat().st_size if path.is_file() else None,
        "md5": md5,
    }


def patch_index_map(out_dir: Path | str) -> dict[str, int]:
    """``patch_id → patch_index`` of the converted store in ``out_dir`` (for the annotation tables)."""
    patches = pq.read_table(Path(out_dir) / PATCH_TABLE, columns=["patch_id", "patch_index"])
    return dict(
        zip(patches["patch_id"].to_pylist(), patches["patch_index"].to_pylist(), strict=True)
    )


def convert_imagery(
    out_dir: Path | str,
    *,
    s2: Sequence[Path | str] = (),
    s1: Sequence[Path | str] = (),
    reference_maps: Sequence[Path | str] = (),
    metadata: Sequence[Path | str] = (),
    annotations: Sequence[Path | str] = (),
    patch_ids: Sequence[str] | None = None,
    all_patches: bool = False,
    allow_missing_s1: bool = False,
    allow_missing_reference_maps: bool = False,
    skip_bad: bool = False,
    workers: int = 1,
    preset: str = DEFAULT_PRESET,
    shard_size: int = DEFAULT_SHARD_SIZE,
    verify: bool = False,
    checksum_list: Path | str | None = None,
    progress: bool = True,
    pass_runner=None,
) -> ImageryResult:
    """Convert imagery into ``out_dir/imagery.zarr`` and ``out_dir/patches.parquet``.

    Sources are ``.tar.zst`` archives or folders (v2, flat pre-release, v1.0), several per
    modality allowed; a modality without sources gets no array (``has_*`` false). The patches are
    those of ``patch_ids``, else every metadata patch with ``all_patches``, else those of the
    ``annotations`` tables (whose split, ``bench`` included, wins over the metadata split).
    Raises ``ImageryInputError`` (a ``ValueError``) naming the file/patch for bad input, unless
    ``skip_bad`` records it in ``out_dir/imagery_report.json`` and drops the patch.
    ``pass_runner`` runs each pass (default: local processes; ``bigearthnet_txt.conversion.dask_engine`` has one
    for Dask); it takes the arguments of ``_run_pass``.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    if preset not in PRESETS:
        raise ValueError(f"unknown codec preset {preset!r}; expected one of {PRESETS}")
    passes = {
        "s2": [as_source(p) for p in s2],
        "s1": [as_source(p) for p in s1],
        "reference_map": [as_source(p) for p in reference_maps],
    }
    passes = {name: paths for name, paths in passes.items() if paths}
    if not passes:
        raise ValueError("no imagery source given (--s2, --s1 or --reference-maps)")
    for paths in passes.values():
        for path in paths:
            if not path.exists():
                raise FileNotFoundError(f"{path}: imagery source not found")
    metadata_files = [Path(m) for m in metadata] or find_metadata(
        p for ps in passes.values() for p in ps if isinstance(p, Path)
    )
    md5s: dict[str, str] = {}
    if verify:
        expected = read_checksum_list(checksum_list) if checksum_list else None
        files = [
            p for ps in passes.values() for p in ps if isinstance(p, Path) and p.is_file()
        ] + list(metadata_files)
        md5s = verify_files(files, expected, progress)
        expect_md5([p for ps in passes.values() for p in ps], expected)
    plan = _plan(metadata_files, annotations, patch_ids, all_patches, shard_size)
    arrays: list[ImageryArray] = [a for name in passes for a in PASSES[name].arrays]
    settings = {
        "sources": {name: [str(p.resolve()) for p in paths] for name, paths in passes.items()},
        "preset": preset,
        "shard_size": shard_size,
        "selection_md5": hashlib.md5(
            "\n".join(
                f"{i}:{p}" for i, p in zip(plan.indices.tolist(), plan.patch_ids, strict=True)
            ).encode()
        ).hexdigest(),
        "allow_missing_s1": allow_missing_s1,
        "allow_missing_reference_maps": allow_missing_reference_maps,
        "skip_bad": skip_bad,
    }
    writer = StoreWriter(
        out_dir, plan.n_rows, shard_size, arrays, preset, settings, encode_threads=workers
    )
    if writer.is_complete() and (out_dir / PATCH_TABLE).is_file():
        table = pq.read_table(out_dir / PATCH_TABLE)
        return ImageryResult(
            out_dir, table.num_rows, already_complete=True, split_ranges=plan.split_ranges
        )
    writer.open()
    errors_file = out_dir / PROGRESS_DIR / "source-errors.json"
    source_errors: list[dict] = json.loads(errors_file.read_text()) if errors_file.is_file() else []
    allow = {"s1": allow_missing_s1, "reference_map": allow_missing_reference_maps, "s2": False}
    local_pool = workers > 1 and pass_runner is None
    pool = (
        ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        if local_pool
        else None
    )
    try:
        for name, paths in passes.items():
            n_before = len(source_errors)
            (pass_runner or _run_pass)(
                PASSES[name], paths, plan, writer, allow_missing=allow[name], skip_bad=skip_bad,
                pool=pool, workers=workers, progress=progress, source_errors=source_errors,
            )  # fmt: skip
            if len(source_errors) != n_before:
                write_json_atomic(errors_file, source_errors)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        writer.close()
    planned = sorted(plan.shard_rows())
    unfinished = {name: writer.missing_shards(name, planned) for name in passes}
    unfinished = {name: shards for name, shards in unfinished.items() if shards}
    if unfinished:
        raise IncompleteConversionError(
            f"{out_dir}: shards not written, the store is left unfinished (rerun to resume): "
            + "; ".join(f"pass {n}: {', '.join(map(str, s[:10]))}{' …' if len(s) > 10 else ''}"
                        for n, s in unfinished.items())
        )  # fmt: skip
    records = {name: writer.records(name) for name in passes}
    bad = source_errors + [b for recs in records.values() for r in recs.values() for b in r["bad"]]
    bad_indices = {b["patch_index"] for b in bad if "patch_index" in b}
    _drop_from_stats(writer, records, plan, bad_indices)
    table = _patch_table(plan, records, bad_indices)
    tmp = unique_temp(out_dir / PATCH_TABLE)
    pq.write_table(table, tmp)
    replace_synced(tmp, out_dir / PATCH_TABLE)
    write_json_atomic(out_dir / REPORT_FILE, {"bad": bad, "n_patches": table.num_rows})
    for name in (PATCH_TABLE, REPORT_FILE):  # temporary files of a run killed while writing them
        for stale in out_dir.glob(f"{name}.*{TEMP_SUFFIX}"):
            stale.unlink(missing_ok=True)
    writer.finalize(
        {
            "arrays": {
                a.name: {
                    "bands": list(a.bands),
                    "resolution_m": a.resolution_m,
                    "units": a.units,
                    "nodata": a.nodata,
                    "dtype": a.dtype,
                    "size": a.size,
                }
                for a in arrays
            },
            "s2_band_order": list(S2_BANDS),
            "stats": _merge_stats(records),
            "stats_split": STATS_SPLIT,
            "stats_note": "population mean/std per band over the train rows; S2 nodata 0 and non-finite S1 excluded; S1 in dB",
            "sources": [
                _source_record(n, p, md5s.get(str(p))) for n, ps in passes.items() for p in ps
            ],
            "metadata_files": [
                _source_record("metadata", Path(m), md5s.get(str(m))) for m in metadata_files
            ],
            "codecs": describe(preset),
            "chunk_patches": 1,
            "shard_patches": shard_size,
            "n_rows": plan.n_rows,
            "n_patches": table.num_rows,
            "split_ranges": {k: list(v) for k, v in plan.split_ranges.items()},
            "patch_table": PATCH_TABLE,
        }
    )
    seconds = time.perf_counter() - started
    result = ImageryResult(out_dir, table.num_rows, bad, seconds, split_ranges=plan.split_ranges)
    if progress:
        print(
            f"imagery: {result.n_patches} patches ({len(bad)} bad) in {seconds:.1f} s "
            f"({result.patches_per_second:.0f} patches/s) -> {out_dir / IMAGERY_STORE}",
            file=sys.stderr,
        )
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m bigearthnet_txt.conversion.imagery.convert --out DIR --s2 PATH ...`` (imagery only)."""
    parser = argparse.ArgumentParser(
        prog="python -m bigearthnet_txt.conversion.imagery.convert",
        description=__doc__.split("\n")[0],
    )
    add_imagery_arguments(parser, with_out_and_annotations=True)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    from bigearthnet_txt.conversion.cli import run_reporting_errors
    from bigearthnet_txt.conversion.output_folder import claim_output_folder

    def run() -> None:
        with claim_output_folder(args.out, "imagery"):
            run_imagery(args)

    return run_reporting_errors("imagery conversion", run)


if __name__ == "__main__":
    sys.exit(main())
