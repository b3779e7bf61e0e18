"""Annotation conversion on several local cores: parsing and weighing in worker processes.

``convert_annotations(..., workers=N)`` (``bigearthnet-txt convert --workers N``) runs the two
CPU-heavy steps of :mod:`bigearthnet_txt.conversion.annotations` in a pool of ``N`` processes while
the main process keeps doing what must stay in order:

* *scan*: the pool starts (``spawn``) and parses the first ``N`` row groups while the main process
  scans the file;
* *spill*: workers parse and validate row groups (``parse_row_group``); the main process ranks the
  rows and appends them to the buckets, in row-group order;
* *write*: workers sort and weigh buckets (``weigh_bucket_file``: redundancy weights, the costliest
  step) and write each result, uncompressed, to an Arrow file beside its bucket; the main process
  memory-maps them in bucket order and writes the Parquet shards, so writing overlaps the weighing.

On the release's 9.55 M rows with ``N = 2`` the conversion takes 224 s of CPU time over the main
process and its workers, with 1.76 GB peak memory (``bench/results/annotations.md``); the workers
do most of it (weighing), the main process the scan, the spill and the Parquet writing, so that
the two cores stay busy.

Results are handed back in the serial order, so the tables are byte-identical to a one-process run
(tested). At most ``N`` row groups or buckets are in flight and buckets hold ``2 (N + 1)`` times
fewer patches than ``AnnotationSettings.patches_per_bucket``, which bounds peak memory. Workers
are started with ``spawn`` (no state of the parent, no forked threads of Arrow's pools).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bigearthnet_txt.conversion.annotation_table import parse_table

WEIGHED_SUFFIX = ".weighed.arrow"


def bucket_settings(settings, workers: int):
    """``settings`` with buckets ``2 * (workers + 1)`` times smaller, so that the buckets held at
    once (one per worker and the one being written, plus the weighing's working copies) take about
    the memory of one serial bucket. Bucket boundaries fall between patches and never change the
    output (``ShardWriter`` writes full row groups whatever the buckets)."""
    size = max(1, settings.patches_per_bucket // (2 * (workers + 1)))
    return dataclasses.replace(settings, patches_per_bucket=size)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes started with ``spawn``."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def in_order(pool: Executor, fn: Callable, items: Iterable, ahead: int) -> Iterator:
    """``fn(item)`` for each item, computed in ``pool`` with at most ``ahead`` items in flight,
    yielded in the order of ``items``. The first ``ahead`` items are submitted at once, so the
    pool works while the caller does something else before it asks for the first result."""
    items = iter(items)
    pending = deque(pool.submit(fn, item) for item in islice(items, ahead))
    return _drain(pool, fn, items, pending)


def _drain(pool: Executor, fn: Callable, items: Iterator, pending: deque) -> Iterator:
    try:
        while pending:
            result = pending.popleft().result()
            following = next(items, None)
            if following is not None:
                pending.append(pool.submit(fn, following))
            yield result
    finally:
        for future in pending:
            future.cancel()


def parse_row_group(job: tuple[str, int]) -> pa.Table:
    """Row group ``rg`` of the Parquet file ``path``, parsed and validated (``parse_table``)."""
    path, rg = job
    return parse_table(pq.ParquetFile(path).read_row_group(rg), path)


def parsed_row_groups(pool: Executor, path: str, row_groups: int, ahead: int) -> Iterator[pa.Table]:
    """The parsed row groups of ``path``, in order, parsed in ``pool``."""
    return in_order(pool, parse_row_group, ((path, rg) for rg in range(row_groups)), ahead)


def weigh_bucket_file(job: tuple[Callable, Path, object]) -> Path:
    """Weigh one bucket file with ``weigh_bucket(path, settings)`` (a module-level function, sent
    to the worker by name) and write the result beside it, uncompressed: the main process maps it
    without a copy, and deletes it once written to Parquet (at most ``workers`` exist at once)."""
    weigh_bucket, path, settings = job
    table = weigh_bucket(path, settings)
    target = path.with_name(path.name.removesuffix(".arrow") + WEIGHED_SUFFIX)
    with pa.ipc.new_file(str(target), table.schema) as writer:
        writer.write_table(table)
    return target


class ProcessBucketWeigher:
    """``weigh`` for ``convert_annotations``: buckets weighed in ``pool`` by ``weigh_bucket``,
    handed back in order."""

    def __init__(self, pool: Executor, ahead: int, weigh_bucket: Callable):
        self.pool, self.ahead, self.weigh_bucket = pool, ahead, weigh_bucket

    def __call__(self, buckets: list[Path], settings) -> Iterator[pa.Table]:
        jobs = ((self.weigh_bucket, path, settings) for path in buckets)
        for weighed in in_order(self.pool, weigh_bucket_file, jobs, self.ahead):
            table = pa.ipc.open_file(pa.memory_map(str(weighed))).read_all()
            weighed.unlink()  # the mapping stays valid until the table is dropped
            yield table
