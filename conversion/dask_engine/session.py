"""The conversion engine chosen on the command line: ``--engine local`` (default) or ``dask``."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

ENGINES = ("local", "dask")


def add_engine_arguments(group) -> None:
    """Add ``--engine`` and ``--scheduler`` to an argparse parser or group."""
    group.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local processes (default) or dask.distributed tasks, one per shard/bucket",
    )
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --engine dask: scheduler address (tcp://host:8786); "
        "default: a LocalCluster of --workers processes",
    )


@dataclass
class Engine:
    """Hooks of the conversion functions: ``executor`` (where shard tasks run) for
    ``convert_imagery``, ``weigh`` for ``convert_annotations``; None keeps their local default."""

    executor: object = None
    weigh: object = None
    client: object = None

    def annotation_options(self) -> dict:
        return {"weigh": self.weigh} if self.weigh is not None else {}


@contextlib.contextmanager
def engine_session(args: argparse.Namespace) -> Iterator[Engine]:
    """The engine of ``args.engine`` (a Dask client open for the duration, when asked)."""
    engine = getattr(args, "engine", "local") or "local"
    if engine == "local":
        if getattr(args, "scheduler", None):
            raise ValueError("--scheduler needs --engine dask")
        yield Engine()
        return
    from bigearthnet_txt.conversion.dask_engine.annotations import DaskBucketWeigher
    from bigearthnet_txt.conversion.dask_engine.cluster import open_client
    from bigearthnet_txt.conversion.dask_engine.imagery import DaskExecutor

    with open_client(args.scheduler, getattr(args, "workers", 1)) as client:
        yield Engine(DaskExecutor(client), DaskBucketWeigher(client), client)
