"""Where shard tasks run: the one thing that differs between the conversion engines.

A ``ShardExecutor`` offers ``submit(fn, *args, key=...)`` returning a future (``done()``,
``result()``, ``cancel()``), ``wait_first(futures)``, ``slots`` (tasks in flight before the pass
runner waits), ``max_open_shards`` (shards whose patches the runner keeps in memory) and
``close()``. ``LocalExecutor`` runs the tasks in this process (``workers=1``) or in worker
processes; ``bigearthnet_txt.conversion.dask_engine.imagery.DaskExecutor`` runs them on a cluster.

Worker processes exit with their parent: each watches its parent process id and exits when it
changes (the parent died, even by SIGKILL, and the process was handed to another parent).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Protocol

PARENT_CHECK_S = 0.5


class ShardExecutor(Protocol):
    """What the pass runner needs from an engine."""

    slots: int
    max_open_shards: int

    def submit(self, fn: Callable, *args, key: str): ...

    def wait_first(self, futures: Iterable) -> None: ...

    def close(self) -> None: ...


def exit_with_parent(parent_pid: int, interval_s: float = PARENT_CHECK_S) -> None:
    """Worker initializer: a daemon thread ends this process once its parent ``parent_pid`` is
    gone."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            threading.Event().wait(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class LocalExecutor:
    """Shard tasks in this process (``workers <= 1``) or in ``workers`` spawned processes that exit
    with this one. The pool starts with the first task."""

    def __init__(self, workers: int = 1, *, max_open_shards: int = 16):
        self.workers = max(1, workers)
        self.max_open_shards = max_open_shards
        self.slots = 2 * self.workers
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, fn: Callable, *args, key: str = "") -> Future:
        if self.workers > 1:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=exit_with_parent,
                    initargs=(os.getpid(),),
                )
            return self._pool.submit(fn, *args)
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as err:  # noqa: BLE001 - handed over in the future, as a pool would
            future.set_exception(err)
        return future

    def wait_first(self, futures: Iterable[Future]) -> None:
        wait(list(futures), return_when=FIRST_COMPLETED)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
