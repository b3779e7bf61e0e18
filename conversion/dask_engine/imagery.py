"""The imagery conversion on Dask: shard tasks (``imagery.shard_task.write_shard``) run on the
workers of a ``distributed.Client``.

``DaskExecutor(client)`` is handed to ``convert_imagery(executor=...)``; planning, the pass runner
(``imagery.pass_runner``: resume with source-hash checks, bad input, integrity), and finalizing are
those of the local engine, only the tasks run elsewhere.

* Folder sources (local, or fsspec directory URLs such as ``s3://bucket/BigEarthNet-S2/``) are
  listed by the client; each shard task carries the paths/URLs of its patches, which the worker
  reads itself, so any number of workers read in parallel.
* A ``.tar.zst`` archive is one zstd stream: it has no index and cannot be read from the middle,
  so it is streamed once, by the client, and each shard is submitted (carrying its patches'
  bytes) as soon as its last patch has been read. Memory stays bounded: at most
  ``max_open_shards`` incomplete shards are held in memory (patches of further shards wait on
  disk, ``DIR/.imagery-staging``), and the client waits while more than ``tasks_per_worker``
  tasks per worker are in flight. For full parallel reads extract the archives (to disk or to
  object storage, one object per band file) and give folders.

A task that finds its shard's marker returns it without writing; a worker that dies before the
marker is retried (``TASK_RETRIES``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from distributed import wait

from bigearthnet_txt.conversion.dask_engine.cluster import n_workers

TASK_RETRIES = 2


class DaskExecutor:
    """Shard tasks on the client's cluster (the ``ShardExecutor`` of ``imagery.executors``)."""

    def __init__(self, client, *, max_open_shards: int = 16, tasks_per_worker: int = 2):
        self.client = client
        self.max_open_shards = max_open_shards
        self.tasks_per_worker = tasks_per_worker

    @property
    def slots(self) -> int:
        return self.tasks_per_worker * n_workers(self.client)

    def submit(self, fn: Callable, *args, key: str):
        return self.client.submit(
            fn, *args, pure=False, retries=TASK_RETRIES, key=f"{key}-{uuid.uuid4().hex[:8]}"
        )

    def wait_first(self, futures: Iterable) -> None:
        wait(list(futures), return_when="FIRST_COMPLETED")

    def close(self) -> None:
        """Nothing to close: the client belongs to the caller."""
