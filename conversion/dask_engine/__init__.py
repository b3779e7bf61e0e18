r"""Conversion on ``dask.distributed``: the same stores and tables as the local engine, computed as
independent tasks on a ``LocalCluster`` or on a cluster behind a scheduler address.

Modules, one job each:

* ``cluster`` — opens a ``distributed.Client`` (a ``LocalCluster`` of N workers, or a scheduler);
* ``imagery`` — ``DaskExecutor``: the shard tasks of the common pass runner
  (``imagery.pass_runner``, ``imagery.shard_task``) as tasks on the cluster (folders: read by the
  workers; ``.tar.zst`` archives: streamed once by the client, which hands complete shards over);
* ``annotations`` — redundancy weights of the annotation buckets as tasks;
* ``session`` — ``engine_session(args)``: the engine chosen by ``--engine``/``--scheduler``.

Workers write into the output folder themselves, so with a remote cluster the output folder must
be on a file system that the client and every worker mount at the same path. On a cluster::

    dask scheduler                                          # tcp://head:8786
    dask worker tcp://head:8786 --nworkers 16 --nthreads 1  # on every node
    bigearthnet-txt convert --engine dask --scheduler tcp://head:8786 --out /shared/out \
        --annotations BigEarthNet.txt.parquet --s2 s3://bucket/BigEarthNet-S2/ ...
"""
