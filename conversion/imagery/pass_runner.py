"""The one pass runner of both engines: resume check, shard jobs, bad input, integrity.

``run_pass`` streams the sources of one pass once and resolves each patch to its row through the
plan. Rows of shards still to write are kept per shard (``ShardSpill``: up to
``executor.max_open_shards`` shards in memory, further ones pickled under
``DIR/.imagery-staging/<pass>/``); a shard becomes a ``ShardJob`` the moment its last patch has
been read and runs as a task on the executor (``executors``), which is the only thing that differs
between the engines. At most ``executor.slots`` tasks are in flight.

Resume: shards with a progress marker are not written again, but their source bytes are checked
(also those of a pass that had finished: the store is not complete until every pass is).
Every marker records ``source_digest`` (``combine_digests`` over the ``patch_digest`` of the bytes
the shard was decoded from, for archives, folders and folder URLs alike); the runner hashes the
same patches as it streams past them and, at the end of the pass, discards and writes again every
shard built from other bytes (e.g. from a corrupt archive whose run was killed before the end of
its stream revealed it, or from a folder repaired since).

Bad input: a source that fails its integrity check (``INTEGRITY_KINDS``) discards the pass's
finished shards and raises; other bad input raises ``ImageryInputError`` naming the file/patch,
or with ``skip_bad`` is recorded (source-level errors in ``source_errors``, patch-level ones in
the shard's marker).
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from bigearthnet_txt.conversion.imagery.assembler import combine_digests
from bigearthnet_txt.conversion.imagery.duplicates import PatchOrigins
from bigearthnet_txt.conversion.imagery.errors import ImageryInputError
from bigearthnet_txt.conversion.imagery.executors import ShardExecutor
from bigearthnet_txt.conversion.imagery.listing import iter_patches, load_patch
from bigearthnet_txt.conversion.imagery.metadata import PatchPlan
from bigearthnet_txt.conversion.imagery.passes import Pass
from bigearthnet_txt.conversion.imagery.shard_task import (
    ShardJob,
    ShardOutcome,
    StoreSpec,
    error_from_record,
    write_shard,
)
from bigearthnet_txt.conversion.imagery.sources import INTEGRITY_KINDS, patch_digest
from bigearthnet_txt.conversion.imagery.spill import ShardSpill
from bigearthnet_txt.conversion.imagery.store_writer import StoreWriter

logger = logging.getLogger(__name__)

MissingError = Callable[[list[int]], ImageryInputError]


def missing_error(spec: Pass, plan: PatchPlan, sources: Sequence[Path]) -> MissingError:
    """``build(indices)``: the error for selected rows that no source of the pass has (names the
    first patch and up to five more)."""
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
            text = (
                f"patch {first} is selected (annotations/patch list) but not in the S2 imagery "
                f"({names}){more}"
            )
        else:
            text = f"patch {first}: no reference map in ({names}){more}"
        return ImageryInputError(text, kind=spec.missing_kind, patch=first)

    return build


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


def prefetched(iterable: Iterable, depth: int = 64) -> Iterator:
    """Iterate ``iterable`` in a background thread (reading/decompressing overlaps the rest), at
    most ``depth`` items ahead; its exceptions are re-raised here."""
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


def run_pass(
    spec: Pass,
    sources: Sequence[Path],
    plan: PatchPlan,
    writer: StoreWriter,
    executor: ShardExecutor,
    *,
    allow_missing: bool,
    skip_bad: bool,
    progress: bool,
    source_errors: list[dict],
) -> None:
    """Write every shard of the pass that has no progress marker (see the module docstring)."""
    done = writer.records(spec.name)
    pending = {s: rows for s, rows in plan.shard_rows().items() if s not in done}
    run = PassRun(spec, plan, writer, executor, pending, done, skip_bad, progress)
    if not pending and not run.to_check:
        run.close()
        return
    writer.open()
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
        run.submit_rest(None if allow_missing else missing_error(spec, plan, sources))
        run.wait(0)
    finally:
        run.close()
    stale = run.stale_shards()
    if stale:
        logger.warning(
            "imagery %s: shards %s were built from other source bytes; writing them again",
            spec.name,
            stale,
        )
        for shard in stale:
            writer.discard_shard(spec.name, shard, [a.name for a in spec.arrays])
        run_pass(
            spec, sources, plan, writer, executor, allow_missing=allow_missing,
            skip_bad=skip_bad, progress=progress, source_errors=source_errors,
        )  # fmt: skip


class PassRun:
    """State of one pass: rows seen, shards still open, digests of finished shards, tasks in
    flight."""

    def __init__(
        self,
        spec: Pass,
        plan: PatchPlan,
        writer: StoreWriter,
        executor: ShardExecutor,
        pending: dict[int, list[int]],
        done: dict[int, dict],
        skip_bad: bool,
        progress: bool,
    ):
        self.spec, self.plan, self.executor, self.skip_bad = spec, plan, executor, skip_bad
        self.pending = pending
        self.remaining = {shard: len(rows) for shard, rows in pending.items()}
        self.to_check = {  # an older marker's md5 ("source_md5") never matches: shard rewritten
            s: r.get("source_digest", r.get("source_md5"))
            for s, r in done.items()
            if "source_digest" in r or "source_md5" in r
        }
        self.checked_digests: dict[int, str | None] = {}
        self.store = StoreSpec.of(writer)
        self.lookups = [getattr(plan, name) for name in spec.lookups]
        self.seen: set[int] = set()
        self.origins = PatchOrigins(spec.name)
        self.buffers = ShardSpill(writer.staging_dir / spec.name, executor.max_open_shards)
        self.in_flight: list = []
        self.run_id = uuid.uuid4().hex[:12]
        total = sum(len(rows) for rows in pending.values())
        self.bar = tqdm(
            total=total, unit="patch", desc=f"imagery {spec.name}", disable=not progress,
            smoothing=0.05,
        )  # fmt: skip

    def read(self, source) -> None:
        """Stream one source; submit each shard the moment its last patch is known."""
        self.bar.set_postfix_str(source.name)
        size = self.plan.shard_size
        for patch in prefetched(iter_patches(source)):
            index = next((lk[patch.name] for lk in self.lookups if patch.name in lk), None)
            if index is not None:
                self.origins.check(index, patch.name, source)
            if index is None or index in self.seen:
                continue
            shard = index // size
            if shard in self.to_check:
                self.seen.add(index)
                self.checked_digests[index] = patch_digest(load_patch(patch))
                continue
            if shard not in self.remaining:
                continue
            self.seen.add(index)
            self.buffers.add(shard, (index, self.plan.name_of_index[index], patch))
            self.remaining[shard] -= 1
            if not self.remaining[shard]:
                self.submit(shard, {})
                self.wait(self.executor.slots)

    def submit_rest(self, build_error: MissingError | None) -> None:
        """Submit the shards still open: their rows no source had are missing (an error, or
        recorded with ``skip_bad``; none when ``build_error`` is None: missing allowed)."""
        open_shards = sorted(self.remaining)
        absent = sorted(i for s in open_shards for i in self.pending[s] if i not in self.seen)
        if absent and build_error is not None and not self.skip_bad:
            raise build_error(absent)
        for shard in open_shards:
            missing = [i for i in self.pending[shard] if i not in self.seen]
            records = {i: build_error([i]).to_record() for i in missing} if build_error else {}
            self.submit(shard, records)
            self.wait(self.executor.slots)

    def submit(self, shard: int, missing: dict[int, dict]) -> None:
        expected = self.pending[shard]
        job = ShardJob(
            self.spec.name, shard, list(expected), self.buffers.pop(shard),
            {i: self.plan.split_of_index[i] for i in expected}, missing,
        )  # fmt: skip
        del self.remaining[shard]
        key = f"imagery-{self.spec.name}-{shard:06d}-{self.run_id}"
        self.in_flight.append(
            self.executor.submit(write_shard, self.store, job, self.skip_bad, key=key)
        )

    def wait(self, limit: int) -> None:
        """Collect finished tasks until at most ``limit`` are in flight; raise their bad input."""
        while self.in_flight and (
            len(self.in_flight) > limit or any(f.done() for f in self.in_flight)
        ):
            if len(self.in_flight) > limit:
                self.executor.wait_first(self.in_flight)
            finished = [f for f in self.in_flight if f.done()]
            self.in_flight = [f for f in self.in_flight if not f.done()]
            for future in finished:
                outcome = future.result()
                if outcome.error is not None:
                    raise error_from_record(outcome.error)
                self.shard_done(outcome)

    def shard_done(self, outcome: ShardOutcome) -> None:
        """A shard's task finished and its marker is written."""
        self.bar.update(len(self.pending[outcome.shard]))

    def settle(self) -> None:
        """Wait for the tasks in flight, whatever their outcome (none writes after this)."""
        for future in self.in_flight:
            try:
                future.result()
            except Exception:  # noqa: BLE001, S110 - the pass is being discarded anyway
                pass
        self.in_flight = []

    def stale_shards(self) -> list[int]:
        """Finished shards whose recorded ``source_digest`` differs from the bytes streamed now."""
        size = self.plan.shard_size
        by_shard: dict[int, dict[int, str | None]] = {s: {} for s in self.to_check}
        for index, digest in self.checked_digests.items():
            by_shard[index // size][index] = digest
        return sorted(
            s for s, digest in self.to_check.items() if combine_digests(by_shard[s]) != digest
        )

    def close(self) -> None:
        for future in self.in_flight:
            future.cancel()
        self.buffers.close()
        self.bar.close()
