"""The imagery pass on Dask: per-shard tasks (``shard_task.write_shard``) instead of one process
pool behind one assembler.

``DaskPassRunner(client)`` has the signature of the local engine's pass runner and is handed to
``convert_imagery(pass_runner=...)``, which keeps planning, resume and finalizing as they are.

* Folder sources (local, or fsspec directory URLs such as ``s3://bucket/BigEarthNet-S2/``) are
  listed first; every pending shard then becomes one independent task carrying the paths/URLs of
  its patches, which the worker reads itself. Any number of workers read in parallel.
* A ``.tar.zst`` archive is one zstd stream: it has no index and cannot be read from the middle,
  so it is streamed once, by the client, and each shard is submitted as a task (carrying its
  patches' bytes) as soon as its last patch has been read. Decoding, encoding and writing run on
  the workers. Memory stays bounded: at most ``max_open_shards`` incomplete shards are held in
  memory (patches of further shards wait on disk, ``DIR/.dask-staging``), and the client waits
  while more than ``tasks_per_worker`` tasks per worker are in flight. For full parallel reads
  extract the archives (to disk or to object storage, one object per band file) and give folders.

A shard whose marker exists is not submitted; a task finds the marker too, so a shard finished is
never rewritten. Bad input raises ``ImageryInputError`` on the client, or with ``skip_bad`` is
recorded as in the local engine.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from tqdm.auto import tqdm

from bigearthnet_txt.conversion.dask_engine.cluster import n_workers
from bigearthnet_txt.conversion.dask_engine.listing import iter_folder_source
from bigearthnet_txt.conversion.dask_engine.shard_task import (
    ShardJob,
    StoreSpec,
    error_from_record,
    write_shard,
)
from bigearthnet_txt.conversion.imagery.errors import ImageryInputError
from bigearthnet_txt.conversion.imagery.metadata import PatchPlan
from bigearthnet_txt.conversion.imagery.passes import Pass
from bigearthnet_txt.conversion.imagery.duplicates import PatchOrigins
from bigearthnet_txt.conversion.imagery.sources import INTEGRITY_KINDS, is_archive, iter_source
from bigearthnet_txt.conversion.imagery.spill import ShardSpill
from bigearthnet_txt.conversion.imagery.store_writer import StoreWriter

STAGING_DIR = ".dask-staging"
TASK_RETRIES = 2


class DaskPassRunner:
    """Runs one imagery pass as per-shard tasks on the client's cluster."""

    def __init__(self, client, *, max_open_shards: int = 16, tasks_per_worker: int = 2):
        self.client = client
        self.max_open_shards = max_open_shards
        self.tasks_per_worker = tasks_per_worker

    def __call__(
        self,
        spec: Pass,
        sources: Sequence,
        plan: PatchPlan,
        writer: StoreWriter,
        *,
        allow_missing: bool,
        skip_bad: bool,
        workers: int,
        progress: bool,
        source_errors: list[dict],
        pool: object = None,
    ) -> None:
        """Run the pass (``workers`` and the local engine's ``pool`` are not used: the cluster
        has its own workers)."""
        from bigearthnet_txt.conversion.imagery.convert import _missing_error, discard_untrusted

        done = writer.done_shards(spec.name)
        pending = {s: rows for s, rows in plan.shard_rows().items() if s not in done}
        if not pending:
            return
        writer.open()
        run = _PassRun(self, spec, plan, writer, pending, skip_bad, progress)
        try:
            for source in sources:
                try:
                    run.read(source)
                except ImageryInputError as err:
                    if err.kind in INTEGRITY_KINDS:
                        run.settle()
                        raise discard_untrusted(writer, spec, err) from err
                    if not skip_bad:
                        raise
                    source_errors.append({**err.to_record(), "pass": spec.name})
            absent = sorted(i for s in run.open_shards for i in pending[s] if i not in run.seen)
            if absent and not allow_missing and not skip_bad:
                raise _missing_error(spec, plan, sources)(absent)
            build_error = None if allow_missing else _missing_error(spec, plan, sources)
            for shard in sorted(run.open_shards):
                missing = [i for i in pending[shard] if i not in run.seen]
                run.submit(
                    shard, {i: build_error([i]).to_record() for i in missing} if build_error else {}
                )
            run.wait(0)
        finally:
            run.close()


class _PassRun:
    """State of one pass: the patches seen, the shards still open, the tasks in flight."""

    def __init__(self, runner: DaskPassRunner, spec, plan, writer, pending, skip_bad, progress):
        self.runner, self.spec, self.plan, self.pending, self.skip_bad = (
            runner,
            spec,
            plan,
            pending,
            skip_bad,
        )
        self.store = StoreSpec.of(writer)
        self.lookups = [getattr(plan, name) for name in spec.lookups]
        self.seen: set[int] = set()
        self.origins = PatchOrigins(spec.name)
        self.open_shards: set[int] = set(pending)
        self.buffers = ShardSpill(writer.out_dir / STAGING_DIR / spec.name, runner.max_open_shards)
        self.in_flight: list = []
        self.rows_of: dict[str, int] = {}
        total = sum(len(rows) for rows in pending.values())
        self.bar = tqdm(
            total=total, unit="patch", desc=f"imagery {spec.name} (dask)", disable=not progress
        )

    def read(self, source) -> None:
        """Read one source; submit each shard the moment its last patch is known."""
        self.bar.set_postfix_str(source.name)
        archive = is_archive(source)
        patches = iter_source(source) if archive else iter_folder_source(source)
        size = self.plan.shard_size
        for patch in patches:
            index = next((lk[patch.name] for lk in self.lookups if patch.name in lk), None)
            if index is not None:
                self.origins.check(index, patch.name, source)
            if index is None or index in self.seen or index // size not in self.open_shards:
                continue
            self.seen.add(index)
            shard = index // size
            self.buffers.add(shard, (index, self.plan.name_of_index[index], patch))
            if all(i in self.seen for i in self.pending[shard]):
                self.submit(shard, {})
                if archive:
                    self.wait(self.runner.tasks_per_worker * n_workers(self.runner.client))

    def submit(self, shard: int, missing: dict[int, dict]) -> None:
        expected = self.pending[shard]
        job = ShardJob(
            self.spec.name, shard, list(expected), self.buffers.pop(shard),
            {i: self.plan.split_of_index[i] for i in expected}, missing,
        )  # fmt: skip
        self.open_shards.discard(shard)
        future = self.runner.client.submit(
            write_shard, self.store, job, self.skip_bad, pure=False, retries=TASK_RETRIES,
            key=f"imagery-{self.spec.name}-{shard:06d}-{uuid.uuid4().hex[:12]}",
        )  # fmt: skip
        self.rows_of[future.key] = len(expected)
        self.in_flight.append(future)

    def wait(self, limit: int) -> None:
        """Collect finished tasks until at most ``limit`` are in flight; raise their bad input."""
        from distributed import wait

        while self.in_flight and (
            len(self.in_flight) > limit or any(f.done() for f in self.in_flight)
        ):
            if len(self.in_flight) > limit:
                wait(self.in_flight, return_when="FIRST_COMPLETED")
            finished = [f for f in self.in_flight if f.done()]
            self.in_flight = [f for f in self.in_flight if not f.done()]
            for future in finished:
                outcome = future.result()
                if outcome.error is not None:
                    raise error_from_record(outcome.error)
                self.bar.update(self.rows_of.pop(future.key))

    def settle(self) -> None:
        """Wait for the tasks in flight, whatever their outcome (none writes after this)."""
        from distributed import wait

        wait(self.in_flight)
        self.in_flight = []

    def close(self) -> None:
        for future in self.in_flight:
            future.cancel()
        self.buffers.close()
        self.bar.close()
