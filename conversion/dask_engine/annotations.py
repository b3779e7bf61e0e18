"""Annotation conversion on Dask: one task per patch-range bucket.

``bigearthnet_txt.conversion.annotations`` spills the rows into buckets, each holding a range of
patch ranks, so every redundancy group (a patch, or a patch and type) lies in one bucket.
``DaskBucketWeigher`` submits one task per bucket (read, sort, compute the weights, write
``bucket-NNNNN.weighed.arrow`` beside it) and hands the weighed buckets back in order to the writer
of the Parquet files, which cuts the files across buckets exactly as the local engine does. Writing
overlaps the weighing: bucket ``k`` is written while later ones are still computed. Scan and spill
read the source file once, sequentially, on the client.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from bigearthnet_txt.conversion.annotations import AnnotationSettings, weigh_bucket
from bigearthnet_txt.conversion.imagery.store_writer import replace_synced, unique_temp

WEIGHED_SUFFIX = ".weighed.arrow"
TASK_RETRIES = 2


def weigh_bucket_file(path: Path, settings: AnnotationSettings) -> Path:
    """Weigh one bucket file and write the result beside it: to a temporary file of a unique name
    (a task run twice never tears the file), synced and renamed into place."""
    table = weigh_bucket(path, settings)
    target = path.with_name(path.name.removesuffix(".arrow") + WEIGHED_SUFFIX)
    tmp = unique_temp(target)
    try:
        options = pa.ipc.IpcWriteOptions(compression="lz4")
        with pa.ipc.new_file(str(tmp), table.schema, options=options) as writer:
            writer.write_table(table)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    replace_synced(tmp, target)
    return target


class DaskBucketWeigher:
    """``weigh`` for ``convert_annotations``: the buckets weighed as tasks on the client's
    cluster."""

    def __init__(self, client):
        self.client = client

    def __call__(self, buckets: list[Path], settings: AnnotationSettings) -> Iterator[pa.Table]:
        run = uuid.uuid4().hex[:12]
        futures = [
            self.client.submit(
                weigh_bucket_file,
                path,
                settings,
                pure=False,
                retries=TASK_RETRIES,
                key=f"weigh-{path.stem}-{run}",
            )
            for path in buckets
        ]
        try:
            for future in futures:
                weighed = future.result()
                with pa.memory_map(str(weighed)) as source:
                    table = pa.ipc.open_file(source).read_all()
                weighed.unlink()
                yield table
        finally:
            for future in futures:
                future.cancel()
