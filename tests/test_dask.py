"""The Dask engine writes the same store and tables as the local engine, also when a worker dies."""

from __future__ import annotations

import json
import os
from concurrent.futures import Future

import distributed
import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from imagery_support import (
    METADATA,
    S2_SAMPLES,
    S2_SOURCES,
    V1_S1_SAMPLES,
    assert_same_store,
    make_archive,
)

from bigearthnet_txt.conversion.annotations import AnnotationSettings, convert_annotations
from bigearthnet_txt.conversion.cli import main
from bigearthnet_txt.conversion.dask_engine.annotations import DaskBucketWeigher
from bigearthnet_txt.conversion.dask_engine.cluster import open_client
from bigearthnet_txt.conversion.dask_engine.imagery import DaskExecutor
from bigearthnet_txt.conversion.imagery.listing import iter_remote_folder
from bigearthnet_txt.conversion.imagery.executors import LocalExecutor
from bigearthnet_txt.conversion.imagery.shard_task import (
    ShardJob,
    ShardOutcome,
    StoreSpec,
    write_shard,
)
from bigearthnet_txt.conversion.imagery.convert import REPORT_FILE, convert_imagery
from bigearthnet_txt.conversion.remote import RemoteFile
from bigearthnet_txt.conversion.sample_data import V1_S1_DIR, V2_S2_DIR
from bigearthnet_txt.schema import DATA_DIR, IMAGERY_STORE, S2_ARRAYS, STORE_ATTRS_KEY

OPTIONS = {
    "metadata": METADATA,
    "patch_ids": list(S2_SAMPLES),
    "allow_missing_s1": True,
    "shard_size": 2,
    "progress": False,
}


@pytest.fixture(scope="module")
def client():
    """Two workers as threads: fast to start."""
    with open_client(None, 2, processes=False) as c:
        yield c


@pytest.fixture(scope="module")
def process_cluster():
    """Two worker processes under nannies (a worker that dies is restarted)."""
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def local_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    convert_imagery(out, s2=S2_SOURCES, s1=[V1_S1_DIR], **OPTIONS)
    return out


def store_attrs(out) -> dict:
    return json.loads((out / IMAGERY_STORE / "zarr.json").read_text())["attributes"][
        STORE_ATTRS_KEY
    ]


def assert_same_conversion(a, b) -> None:
    """Arrays byte-equal, patch tables, store attributes and bad-patch reports equal."""
    assert_same_store(a, b)
    assert store_attrs(a) == store_attrs(b)
    assert json.loads((a / REPORT_FILE).read_text()) == json.loads((b / REPORT_FILE).read_text())


def test_folders_on_dask_equal_local(client, local_store, tmp_path):
    convert_imagery(
        tmp_path, s2=S2_SOURCES, s1=[V1_S1_DIR], executor=DaskExecutor(client), **OPTIONS
    )
    assert_same_conversion(local_store, tmp_path)
    assert not (tmp_path / ".imagery-progress").exists()


def test_archives_on_dask_equal_local_with_staging(client, local_store, tmp_path):
    s2 = make_archive(S2_SAMPLES, "BigEarthNet-S2", tmp_path / "BigEarthNet-S2.tar.zst")
    s1 = make_archive(
        {p.name: p for p in V1_S1_SAMPLES.values()}, "BigEarthNet-S1", tmp_path / "S1.tar.zst"
    )
    runner = DaskExecutor(client, max_open_shards=1, tasks_per_worker=1)  # shards wait on disk
    convert_imagery(tmp_path / "out", s2=[s2], s1=[s1], executor=runner, **OPTIONS)
    assert_same_store(local_store, tmp_path / "out")
    assert store_attrs(local_store)["stats"] == store_attrs(tmp_path / "out")["stats"]
    assert not (tmp_path / "out" / ".imagery-staging").exists()


def test_folder_behind_fsspec_url(client, tmp_path):
    fs = fsspec.filesystem("memory")
    root = "/dask-test/BigEarthNet-S2"
    for path in V2_S2_DIR.rglob("*.tif"):
        fs.pipe(f"{root}/{path.relative_to(V2_S2_DIR).as_posix()}", path.read_bytes())
    ids = [p for p in S2_SAMPLES if "T33UUP" in p]
    options = {**OPTIONS, "patch_ids": ids}
    convert_imagery(tmp_path / "local", s2=[V2_S2_DIR], **options)
    convert_imagery(
        tmp_path / "url", s2=[f"memory://{root}"], executor=DaskExecutor(client), **options
    )
    assert_same_store(tmp_path / "local", tmp_path / "url")
    fs.rm("/dask-test", recursive=True)


def test_annotation_buckets_on_dask_equal_local(client, sample_release_file, tmp_path):
    settings = AnnotationSettings(rows_per_shard=40, patches_per_bucket=2)
    local = convert_annotations(sample_release_file, tmp_path / "local", settings, progress=False)
    dask = convert_annotations(
        sample_release_file,
        tmp_path / "dask",
        settings,
        progress=False,
        weigh=DaskBucketWeigher(client),
    )
    assert len(local.files) > 2 and local.files == dask.files and local.rows == dask.rows
    for file in local.files:
        assert pq.read_table(tmp_path / "local" / file).equals(
            pq.read_table(tmp_path / "dask" / file)
        ), file


class KillBeforeFirstMarker(distributed.WorkerPlugin):
    """Kills the worker process once, after it wrote a shard's files but before the shard's
    progress marker (a half-written shard); the kill is recorded in ``flag`` so it happens once."""

    def __init__(self, flag: str):
        self.flag = flag

    def setup(self, worker):
        from bigearthnet_txt.conversion.imagery import store_writer

        write_json_atomic = store_writer.write_json_atomic
        flag = self.flag

        def write_or_die(path, payload):
            if ".imagery-progress" in str(path) and not os.path.exists(flag):
                open(flag, "w").close()
                os._exit(1)
            write_json_atomic(path, payload)

        store_writer.write_json_atomic = write_or_die


def test_worker_killed_mid_shard_is_retried_and_equal(process_cluster, local_store, tmp_path):
    flag = tmp_path / "killed"
    with distributed.Client(process_cluster) as client:
        client.register_plugin(KillBeforeFirstMarker(str(flag)), name="kill-once")
        try:
            convert_imagery(
                tmp_path / "out",
                s2=S2_SOURCES,
                s1=[V1_S1_DIR],
                executor=DaskExecutor(client),
                **OPTIONS,
            )
        finally:
            client.unregister_worker_plugin("kill-once")
    assert flag.exists()
    assert_same_conversion(local_store, tmp_path / "out")


def test_cli_with_scheduler_address_equals_local(process_cluster, sample_release_table, tmp_path):
    table = sample_release_table.filter(
        pc.is_in(sample_release_table["patch_id"], value_set=pa_strings(S2_SAMPLES))
    )
    release = tmp_path / "release.parquet"
    pq.write_table(table, release, row_group_size=20)
    common = [
        "convert",
        "--annotations",
        str(release),
        "--metadata",
        str(METADATA[0]),
        "--metadata",
        str(METADATA[1]),
        "--allow-missing-s1",
        "--shard-size",
        "2",
        "--rows-per-shard",
        "30",
        "--quiet",
    ]
    for source in S2_SOURCES:
        common += ["--s2", str(source)]
    common += ["--s1", str(V1_S1_DIR)]
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    address = process_cluster.scheduler_address
    assert (
        main([*common, "--out", str(tmp_path / "dask"), "--engine", "dask", "--scheduler", address])
        == 0
    )
    assert_same_conversion(tmp_path / "local", tmp_path / "dask")
    files = sorted(
        p.relative_to(tmp_path / "local")
        for p in (tmp_path / "local" / DATA_DIR).rglob("*.parquet")
    )
    assert files == sorted(
        p.relative_to(tmp_path / "dask") for p in (tmp_path / "dask" / DATA_DIR).rglob("*.parquet")
    )
    for file in files:
        assert pq.read_table(tmp_path / "local" / file).equals(
            pq.read_table(tmp_path / "dask" / file)
        ), file


def pa_strings(values):
    return pa.array(sorted(values), pa.string())


def test_remote_folder_listing_rejects_a_foreign_band_file():
    fs = fsspec.filesystem("memory")
    root = "/dask-foreign/BigEarthNet-S2"
    folders = [p for p in V2_S2_DIR.glob("*/*") if p.name.endswith(("_75_43", "_89_18"))]
    for folder in folders:
        for path in folder.glob("*.tif"):
            fs.pipe(f"{root}/{folder.name}/{path.name}", path.read_bytes())
    foreign = next(f for f in folders if f.name.endswith("_89_18"))
    fs.pipe(
        f"{root}/S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43/{foreign.name}_B02.tif", b"x"
    )
    try:
        patches = {p.name: p for p in iter_remote_folder(RemoteFile(f"memory://{root}"))}
    finally:
        fs.rm("/dask-foreign", recursive=True)
    bad = patches["S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"].error
    assert bad is not None and bad.kind == "foreign-band" and foreign.name in str(bad)
    assert patches[foreign.name].error is None and len(patches[foreign.name].files) == 12


def test_worker_never_creates_or_deletes_the_store(tmp_path):
    """A worker that cannot see the store (not mounted) fails clearly and leaves the folder as
    is."""
    out = tmp_path / "out"
    (out / ".imagery-progress" / "s2").mkdir(parents=True)
    (out / ".imagery-progress" / "s2" / "000000.json").write_text("{}")
    spec = StoreSpec(out, 6, 2, S2_ARRAYS, "speed", {"test": True})
    job = ShardJob("s2", 1, [2, 3], [], {2: "train", 3: "train"})
    with pytest.raises(FileNotFoundError, match="cannot open the store being written"):
        write_shard(spec, job, skip_bad=False)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        ".imagery-progress",
        ".imagery-progress/s2",
        ".imagery-progress/s2/000000.json",
    ]


class LoseOddShards(LocalExecutor):
    """An executor whose odd shard tasks report success without writing anything."""

    def submit(self, fn, store, job, skip_bad, *, key):
        if job.shard % 2:
            lost = Future()
            lost.set_result(ShardOutcome(job.shard, {}))
            return lost
        return super().submit(fn, store, job, skip_bad, key=key)


def test_finalize_refuses_a_pass_with_shards_not_written(tmp_path):
    with pytest.raises(FileNotFoundError, match="shards not written.*pass s2: 1, 3$"):
        convert_imagery(tmp_path, s2=S2_SOURCES, executor=LoseOddShards(), **OPTIONS)
    assert not (tmp_path / "patches.parquet").exists()
