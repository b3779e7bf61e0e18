"""The shard task of the imagery conversion: one shard of one pass, start to finish.

``write_shard`` reads the bytes of the shard's patches (``load_patch``), decodes them, fills the
shard block of every array of the pass, writes the shard files (each renamed into place) and then
the shard's progress marker. Both engines run it: the local engine in its own process or in worker
processes, the Dask engine as a task on a cluster worker. A shard whose marker exists is never
rewritten: a task retried after its worker died once the marker was written returns at once, and
one that died earlier finds no marker and writes the shard again.

Bad input is returned in ``ShardOutcome.error``, not raised, so that a task with bad input is not
retried like one whose worker died; the pass runner raises it (or records it with ``--skip-bad``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bigearthnet_txt.conversion.imagery.assembler import ShardAssembler
from bigearthnet_txt.conversion.imagery.errors import ImageryInputError
from bigearthnet_txt.conversion.imagery.listing import load_patch
from bigearthnet_txt.conversion.imagery.passes import PASSES, decode_patch
from bigearthnet_txt.conversion.imagery.sources import PatchFiles, patch_digest
from bigearthnet_txt.conversion.imagery.store_writer import StoreWriter
from bigearthnet_txt.schema import ImageryArray


@dataclass(frozen=True)
class StoreSpec:
    """What a worker needs to reopen the store being written (``StoreWriter`` arguments)."""

    out_dir: Path
    n_rows: int
    shard_size: int
    arrays: tuple[ImageryArray, ...]
    preset: str
    settings: dict

    @classmethod
    def of(cls, writer: StoreWriter) -> StoreSpec:
        return cls(
            writer.out_dir,
            writer.n_rows,
            writer.shard_size,
            tuple(writer.arrays),
            writer.preset,
            writer.settings,
        )

    def writer(self) -> StoreWriter:
        """A writer of the existing store (a worker never creates or deletes it)."""
        return StoreWriter(
            self.out_dir, self.n_rows, self.shard_size, self.arrays, self.preset, self.settings,
            create=False,
        )  # fmt: skip


@dataclass
class ShardJob:
    """One shard of one pass: the rows expected, the patches found for them (in source order,
    ``(patch_index, patch_id, files)``), the split of each expected row, and the error records of
    expected rows no source has."""

    pass_name: str
    shard: int
    expected: list[int]
    patches: list[tuple[int, str, PatchFiles]]
    split_of_index: dict[int, str]
    missing: dict[int, dict] = field(default_factory=dict)


@dataclass
class ShardOutcome:
    """The shard's progress record, or the bad-input error record that stopped it."""

    shard: int
    record: dict | None = None
    error: dict | None = None


def error_from_record(record: dict) -> ImageryInputError:
    """The ``ImageryInputError`` of a ``to_record()`` dict."""
    return ImageryInputError(
        record["message"], kind=record["kind"], path=record["path"], patch=record["patch"]
    )


class _MissingErrors:
    """``missing_error`` for ``ShardAssembler.finish``: the prepared error of the first index."""

    def __init__(self, records: dict[int, dict]):
        self.records = records

    def __call__(self, indices: list[int]) -> ImageryInputError:
        return error_from_record(self.records[indices[0]])


def write_shard(store: StoreSpec, job: ShardJob, skip_bad: bool) -> ShardOutcome:
    """Decode, assemble and write ``job``'s shard (nothing when its marker exists)."""
    writer = store.writer()
    marker = writer.marker(job.pass_name, job.shard)
    if marker.is_file():
        return ShardOutcome(job.shard, json.loads(marker.read_text()))
    assembler = ShardAssembler(
        PASSES[job.pass_name], job.shard, store.shard_size, job.expected, job.split_of_index,
        skip_bad=skip_bad,
    )  # fmt: skip
    try:
        for index, patch_id, patch in job.patches:
            loaded = load_patch(patch)
            assembler.add(
                decode_patch(job.pass_name, loaded, index, patch_id), patch_digest(loaded)
            )
        block, record = assembler.finish(_MissingErrors(job.missing) if job.missing else None)
    except ImageryInputError as err:
        return ShardOutcome(job.shard, error=err.to_record())
    writer.write_shard(job.pass_name, job.shard, block, record)
    return ShardOutcome(job.shard, record)
