"""A ``distributed.Client`` for the conversion: a scheduler address, or a ``LocalCluster``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def open_client(
    scheduler: str | None = None, workers: int = 1, *, processes: bool = True
) -> Iterator:
    """Yield a client of the scheduler at ``scheduler`` (``tcp://host:8786``), or of a new
    ``LocalCluster`` with ``workers`` single-threaded workers (processes unless told otherwise),
    closed on exit."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    cluster = LocalCluster(
        n_workers=max(1, workers),
        threads_per_worker=1,
        processes=processes,
        dashboard_address=":0",
    )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def n_workers(client) -> int:
    """Workers currently connected to the client's scheduler."""
    return max(1, len(client.scheduler_info().get("workers", {})))
