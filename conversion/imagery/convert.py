"""Orchestration: ``convert_imagery(out_dir, ImageryConfig(...))`` turns BigEarthNet imagery into
``DIR/imagery.zarr`` and ``DIR/patches.parquet``.

Order of work: verify checksums (``verify``) → read metadata and plan the patch order → one pass
per given modality (S2, then S1, then reference maps), each streaming its sources once and writing
whole shards as tasks (``pass_runner``; the tasks run where the executor puts them: this process,
worker processes, or a Dask cluster) → finalize (``finalize``: patch table, skip-bad report
``DIR/imagery_report.json``, store attributes with statistics and settings). Killed at any point,
the same command resumes at the first shard without a progress marker, after checking that the
source bytes behind the finished shards are those they were built from; a finished store is left
as is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from bigearthnet_txt.conversion.imagery.checksums import read_checksum_list, verify_files
from bigearthnet_txt.conversion.imagery.codecs import DEFAULT_PRESET, DEFAULT_SHARD_SIZE, PRESETS
from bigearthnet_txt.conversion.imagery.executors import LocalExecutor, ShardExecutor
from bigearthnet_txt.conversion.imagery.finalize import REPORT_FILE, finalize_store
from bigearthnet_txt.conversion.imagery.metadata import (
    PatchPlan,
    annotation_splits,
    find_metadata,
    load_metadata,
    plan_patches,
)
from bigearthnet_txt.conversion.imagery.passes import PASSES
from bigearthnet_txt.conversion.imagery.pass_runner import run_pass
from bigearthnet_txt.conversion.imagery.store_writer import (
    PROGRESS_DIR,
    StoreWriter,
    write_json_atomic,
)
from bigearthnet_txt.conversion.output_folder import claim_output_folder
from bigearthnet_txt.conversion.remote import RemoteFile, as_source, expect_md5
from bigearthnet_txt.schema import IMAGERY_STORE, PATCH_TABLE

logger = logging.getLogger(__name__)

__all__ = [
    "REPORT_FILE",
    "ImageryConfig",
    "ImageryResult",
    "IncompleteConversionError",
    "convert_imagery",
    "patch_index_map",
]

Sources = dict[str, list[Path | RemoteFile]]  # pass name -> sources, in pass order


class IncompleteConversionError(FileNotFoundError):
    """Planned shards of a pass have no progress marker when the store is to be finalized."""


@dataclass
class ImageryConfig:
    """What to convert and how (in the shape of ``datasets``' ``ParquetConfig``: fields with
    defaults, checked on creation).

    Sources (``s2``, ``s1``, ``reference_maps``) are ``.tar.zst`` archives or folders (v2, flat
    pre-release, v1.0), local or URLs, several per modality allowed; a modality without sources
    gets no array (``has_*`` false). ``metadata``: the metadata parquets (default: found beside the
    sources). The patches are those of ``patch_ids``, else every metadata patch with
    ``all_patches``, else those of the ``annotations`` tables (whose split, ``bench`` included,
    wins over the metadata split). ``skip_bad`` records bad patches in ``imagery_report.json``
    instead of raising; ``allow_missing_*`` keep patches without S1 pair / reference map.
    ``workers``: processes of the local engine. ``preset``/``shard_size``: store layout.
    ``verify``: md5 of archives and metadata (against ``checksum_list``, default the published
    sums) before any work.
    """

    s2: Sequence[Path | str] = ()
    s1: Sequence[Path | str] = ()
    reference_maps: Sequence[Path | str] = ()
    metadata: Sequence[Path | str] = ()
    annotations: Sequence[Path | str] = ()
    patch_ids: Sequence[str] | None = None
    all_patches: bool = False
    allow_missing_s1: bool = False
    allow_missing_reference_maps: bool = False
    skip_bad: bool = False
    workers: int = 1
    preset: str = DEFAULT_PRESET
    shard_size: int = DEFAULT_SHARD_SIZE
    verify: bool = False
    checksum_list: Path | str | None = None

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown codec preset {self.preset!r}; expected one of {PRESETS}")
        if self.shard_size < 1:
            raise ValueError(f"shard size {self.shard_size}: give at least 1 patch per shard")
        if self.workers < 1:
            raise ValueError(f"workers {self.workers}: give at least 1")

    def allow_missing(self, pass_name: str) -> bool:
        """Whether patches the pass's sources lack are allowed (S2: never)."""
        return {
            "s1": self.allow_missing_s1,
            "reference_map": self.allow_missing_reference_maps,
        }.get(pass_name, False)


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


def patch_index_map(out_dir: Path | str) -> dict[str, int]:
    """``patch_id → patch_index`` of the converted store in ``out_dir`` (for the annotation
    tables)."""
    patches = pq.read_table(Path(out_dir) / PATCH_TABLE, columns=["patch_id", "patch_index"])
    return dict(
        zip(patches["patch_id"].to_pylist(), patches["patch_index"].to_pylist(), strict=True)
    )


def resolve_sources(config: ImageryConfig) -> Sources:
    """The sources of each pass with any, as paths or ``RemoteFile``; each must exist."""
    given = {"s2": config.s2, "s1": config.s1, "reference_map": config.reference_maps}
    sources = {name: [as_source(p) for p in paths] for name, paths in given.items() if paths}
    if not sources:
        raise ValueError("no imagery source given (--s2, --s1 or --reference-maps)")
    for path in (p for paths in sources.values() for p in paths):
        if not path.exists():
            raise FileNotFoundError(f"{path}: imagery source not found")
    return sources


def verify_inputs(
    config: ImageryConfig, sources: Sources, metadata_files: list[Path], progress: bool
) -> dict[str, str]:
    """With ``config.verify``: md5 of local archives and metadata checked now (returned by path),
    remote archives checked as they stream. Without: nothing (empty)."""
    if not config.verify:
        return {}
    expected = read_checksum_list(config.checksum_list) if config.checksum_list else None
    local = [p for ps in sources.values() for p in ps if isinstance(p, Path) and p.is_file()]
    md5s = verify_files(local + list(metadata_files), expected, progress)
    expect_md5([p for ps in sources.values() for p in ps], expected)
    return md5s


def plan_selection(config: ImageryConfig, metadata_files: list[Path]) -> PatchPlan:
    """The store order of the selected patches (``ImageryConfig`` says which)."""
    metadata = load_metadata(metadata_files)
    splits: dict[str, str] | None = None
    for file in config.annotations or ():
        for pid, split in annotation_splits(file).items():
            splits = splits if splits is not None else {}
            if splits.get(pid, split) != split:
                raise ValueError(
                    f"{file}: patch {pid} has split {split!r} here and {splits[pid]!r} elsewhere"
                )
            splits[pid] = split
    patch_ids = config.patch_ids
    if patch_ids is None and config.all_patches:
        patch_ids = metadata["patch_id"].to_pylist()
    if patch_ids is None and splits is None:
        raise ValueError(
            "choose the patches: give annotation tables, --all-patches or a patch list"
        )
    return plan_patches(metadata, config.shard_size, splits=splits, patch_ids=patch_ids)


def conversion_settings(config: ImageryConfig, sources: Sources, plan: PatchPlan) -> dict:
    """What identifies a conversion: a rerun with other settings never mixes into its store."""
    selection = "\n".join(
        f"{i}:{p}" for i, p in zip(plan.indices.tolist(), plan.patch_ids, strict=True)
    )
    return {
        "sources": {name: [str(p.resolve()) for p in paths] for name, paths in sources.items()},
        "preset": config.preset,
        "shard_size": config.shard_size,
        "selection_md5": hashlib.md5(selection.encode()).hexdigest(),
        "allow_missing_s1": config.allow_missing_s1,
        "allow_missing_reference_maps": config.allow_missing_reference_maps,
        "skip_bad": config.skip_bad,
    }


def run_passes(
    config: ImageryConfig,
    sources: Sources,
    plan: PatchPlan,
    writer: StoreWriter,
    executor: ShardExecutor,
    progress: bool,
) -> list[dict]:
    """Run every pass (``pass_runner.run_pass``); returns the source-level bad-input records
    (kept in the progress folder across resumed runs)."""
    errors_file = writer.out_dir / PROGRESS_DIR / "source-errors.json"
    source_errors: list[dict] = json.loads(errors_file.read_text()) if errors_file.is_file() else []
    for name, paths in sources.items():
        n_before = len(source_errors)
        run_pass(
            PASSES[name], paths, plan, writer, executor, allow_missing=config.allow_missing(name),
            skip_bad=config.skip_bad, progress=progress, source_errors=source_errors,
        )  # fmt: skip
        if len(source_errors) != n_before:
            write_json_atomic(errors_file, source_errors)
    return source_errors


def check_finished(writer: StoreWriter, sources: Sources, plan: PatchPlan) -> None:
    """Raise ``IncompleteConversionError`` when a planned shard of a pass has no marker."""
    planned = sorted(plan.shard_rows())
    unfinished = {name: writer.missing_shards(name, planned) for name in sources}
    unfinished = {name: shards for name, shards in unfinished.items() if shards}
    if unfinished:
        listed = "; ".join(
            f"pass {n}: {', '.join(map(str, s[:10]))}{' …' if len(s) > 10 else ''}"
            for n, s in unfinished.items()
        )
        raise IncompleteConversionError(
            f"{writer.out_dir}: shards not written, the store is left unfinished "
            f"(rerun to resume): {listed}"
        )


def convert_imagery(
    out_dir: Path | str,
    config: ImageryConfig | None = None,
    *,
    executor: ShardExecutor | None = None,
    progress: bool = True,
    **options,
) -> ImageryResult:
    """Convert imagery into ``out_dir/imagery.zarr`` and ``out_dir/patches.parquet``.

    ``config`` says what and how (``ImageryConfig``; its fields may be given as keywords instead).
    Shard tasks run on ``executor`` (default: ``LocalExecutor(config.workers)``; the Dask engine
    has ``DaskExecutor``). Raises ``ImageryInputError`` (a ``ValueError``) naming the file/patch
    for bad input, unless ``skip_bad`` records it in ``out_dir/imagery_report.json`` and drops
    the patch; when every selected patch is bad nothing is stored and ``ImageryInputError``
    (kind ``no-usable-patches``) is raised.

    The run holds ``out_dir`` exclusively (``output_folder.claim_output_folder``, lock only: the
    foreign-content check is the commands' policy): while another run holds it,
    ``OutputFolderBusyError`` is raised at once.
    """
    if config is None:
        config = ImageryConfig(**options)
    elif options:
        raise TypeError(f"give either config or its fields, not both ({sorted(options)})")
    with claim_output_folder(out_dir, "convert_imagery", check_foreign=False) as out:
        return _convert_claimed(out, config, executor, progress)


def _convert_claimed(
    out_dir: Path, config: ImageryConfig, executor: ShardExecutor | None, progress: bool
) -> ImageryResult:
    """The conversion of ``convert_imagery``, in an output folder that this run holds."""
    started = time.perf_counter()
    sources = resolve_sources(config)
    metadata_files = [Path(m) for m in config.metadata] or find_metadata(
        p for ps in sources.values() for p in ps if isinstance(p, Path)
    )
    md5s = verify_inputs(config, sources, metadata_files, progress)
    plan = plan_selection(config, metadata_files)
    arrays = [a for name in sources for a in PASSES[name].arrays]
    settings = conversion_settings(config, sources, plan)
    writer = StoreWriter(out_dir, plan.n_rows, config.shard_size, arrays, config.preset, settings)
    if writer.is_complete() and (out_dir / PATCH_TABLE).is_file():
        writer.remove_leftovers()
        n_patches = pq.read_metadata(out_dir / PATCH_TABLE).num_rows
        return ImageryResult(
            out_dir, n_patches, already_complete=True, split_ranges=plan.split_ranges
        )
    writer.open()
    own_executor = executor is None
    executor = executor or LocalExecutor(config.workers)
    try:
        source_errors = run_passes(config, sources, plan, writer, executor, progress)
    finally:
        if own_executor:
            executor.close()
        writer.close()
    check_finished(writer, sources, plan)
    n_patches, bad = finalize_store(writer, plan, source_errors, sources, metadata_files, md5s)
    seconds = time.perf_counter() - started
    result = ImageryResult(out_dir, n_patches, bad, seconds, split_ranges=plan.split_ranges)
    logger.info(
        "imagery: %d patches (%d bad) in %.1f s (%.0f patches/s) -> %s",
        n_patches, len(bad), seconds, result.patches_per_second, out_dir / IMAGERY_STORE,
    )  # fmt: skip
    return result
