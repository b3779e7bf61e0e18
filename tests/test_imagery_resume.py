"""Resume and integrity, on both engines (the one pass runner, shard tasks run locally or on Dask):
an interrupted run resumes to the uninterrupted store, and no shard outlives the source bytes it
was built from (archives and folders alike). Also: every selected patch bad, leftovers of a run
killed at the very end, worker processes of a killed run."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import zstandard
from imagery_support import (
    METADATA,
    S2_SAMPLES,
    S2_SOURCES,
    V1_S1_SAMPLES,
    assert_same_store,
    make_archive,
)

from bigearthnet_txt.conversion.dask_engine.cluster import open_client
from bigearthnet_txt.conversion.dask_engine.imagery import DaskExecutor
from bigearthnet_txt.conversion.imagery.convert import REPORT_FILE, convert_imagery
from bigearthnet_txt.conversion.imagery.errors import ImageryInputError
from bigearthnet_txt.conversion.imagery.executors import LocalExecutor
from bigearthnet_txt.conversion.imagery.store_writer import PROGRESS_DIR, StoreWriter
from bigearthnet_txt.conversion.sample_data import V1_S1_DIR
from bigearthnet_txt.schema import IMAGERY_STORE, PATCH_TABLE

OPTIONS = {"metadata": METADATA, "patch_ids": list(S2_SAMPLES), "allow_missing_s1": True,
           "shard_size": 2, "progress": False}  # fmt: skip
KILL_AFTER_SHARDS = Path(__file__).with_name("kill_after_shards.py")


class Interrupted(BaseException):
    """Stands for a kill: nothing of the run is finished or cleaned after it."""


@pytest.fixture(scope="module")
def dask_client():
    with open_client(None, 2, processes=False) as client:
        yield client


@pytest.fixture(params=["local", "dask"])
def engine(request):
    """``make(**options)``: a fresh executor of the engine under test."""
    if request.param == "local":
        return lambda **options: LocalExecutor(**options)
    client = request.getfixturevalue("dask_client")
    return lambda **options: DaskExecutor(client, **options)


class InterruptAt:
    """Wraps an executor: the run is interrupted when the task of the ``n``-th shard (counting
    from 1) of pass ``pass_name`` is about to be submitted, once the tasks submitted before have
    finished (a kill right after their shards were written)."""

    def __init__(self, executor, n: int, pass_name: str | None = None):
        self.executor, self.n, self.pass_name, self.count = executor, n, pass_name, 0
        self.slots, self.max_open_shards = executor.slots, executor.max_open_shards
        self.submitted = []

    def submit(self, fn, store, job, skip_bad, *, key):
        if self.pass_name in (None, job.pass_name):
            self.count += 1
            if self.count >= self.n:
                for future in self.submitted:
                    future.result()
                raise Interrupted
        future = self.executor.submit(fn, store, job, skip_bad, key=key)
        self.submitted.append(future)
        return future

    def wait_first(self, futures):
        self.executor.wait_first(futures)

    def close(self):
        self.executor.close()


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume-archives")
    s2 = make_archive(S2_SAMPLES, "BigEarthNet-S2", folder / "BigEarthNet-S2.tar.zst")
    s1_folders = {p.name: p for p in V1_S1_SAMPLES.values()}
    s1 = make_archive(s1_folders, "BigEarthNet-S1", folder / "BigEarthNet-S1.tar.zst")
    return s2, s1


def archive_with_wrong_pixels(good: Path, out: Path) -> Path:
    """``good`` with one pixel byte of every B02 file changed; only the zstd frame checksum,
    checked at the end of the stream, tells."""
    tar = bytearray(zstandard.ZstdDecompressor().stream_reader(good.read_bytes()).read())
    with tarfile.open(fileobj=io.BytesIO(bytes(tar)), mode="r:") as archive:
        for member in archive.getmembers():
            if member.name.endswith("_B02.tif"):
                tar[member.offset_data + 400] ^= 0xFF
    good_frame = good.read_bytes()
    compressor = zstandard.ZstdCompressor(write_checksum=True)
    out.write_bytes(compressor.compress(bytes(tar))[:-4] + good_frame[-4:])
    return out


def test_interrupted_run_resumes_to_the_uninterrupted_store(
    engine, archives, s2_sample_store_dir, tmp_path
):
    s2, s1 = archives
    out = tmp_path / "out"
    with pytest.raises(Interrupted):
        convert_imagery(out, s2=[s2], s1=[s1], executor=InterruptAt(engine(), 3), **OPTIONS)
    assert len(list((out / PROGRESS_DIR / "s2").glob("*.json"))) == 2
    assert not (out / PATCH_TABLE).exists()
    convert_imagery(out, s2=[s2], s1=[s1], executor=engine(), **OPTIONS)
    assert_same_store(s2_sample_store_dir, out)
    assert not (out / PROGRESS_DIR).exists()


def test_corrupt_stream_discards_the_pass_and_rerun_redoes_it(engine, archives, tmp_path):
    s2, s1 = archives
    source = archive_with_wrong_pixels(s2, tmp_path / "BigEarthNet-S2.tar.zst")
    options = {**OPTIONS, "shard_size": 1}
    with pytest.raises(ImageryInputError, match="corrupt .* s2 pass were discarded"):
        convert_imagery(tmp_path / "out", s2=[source], s1=[s1], executor=engine(), **options)
    assert not list((tmp_path / "out" / PROGRESS_DIR).rglob("*.json"))
    shutil.copyfile(s2, source)
    convert_imagery(tmp_path / "out", s2=[source], s1=[s1], executor=engine(), **options)
    convert_imagery(tmp_path / "reference", s2=[s2], s1=[s1], **options)
    assert_same_store(tmp_path / "reference", tmp_path / "out")


def test_shard_built_from_bytes_that_later_fail_their_check_is_rebuilt(
    engine, archives, s2_sample_store_dir, tmp_path, caplog
):
    """A run over a corrupt archive interrupted before the end of the stream (which would have
    told) leaves shards with wrong pixels; the rerun over the good archive finds their bytes
    differ and writes them again."""
    s2, s1 = archives
    source = archive_with_wrong_pixels(s2, tmp_path / "BigEarthNet-S2.tar.zst")
    out = tmp_path / "out"
    with pytest.raises(Interrupted):
        convert_imagery(out, s2=[source], s1=[s1], executor=InterruptAt(engine(), 2), **OPTIONS)
    assert len(list((out / PROGRESS_DIR / "s2").glob("*.json"))) == 1
    shutil.copyfile(s2, source)
    with caplog.at_level("WARNING"):
        convert_imagery(out, s2=[source], s1=[s1], executor=engine(), **OPTIONS)
    assert "built from other source bytes; writing them again" in caplog.text
    assert_same_store(s2_sample_store_dir, out)


def _copy_sources(tmp_path: Path) -> list[Path]:
    copies = []
    for source in S2_SOURCES:
        copy = tmp_path / "sources" / f"{len(copies)}" / source.name
        shutil.copytree(source, copy)
        copies.append(copy)
    return copies


def test_folder_source_repaired_after_a_kill_rebuilds_the_shard_of_the_old_bytes(
    engine, s2_sample_store_dir, tmp_path, caplog
):
    """A band file replaced by another patch's (decodes fine, wrong pixels) until the S2 pass has
    finished; the folder is repaired before the rerun: the shard holding that patch is rebuilt."""
    sources = _copy_sources(tmp_path)
    band = next(sources[0].rglob("*_B03.tif"))
    original = band.read_bytes()
    other = next(p for p in sources[0].rglob("*_B03.tif") if p.parent != band.parent)
    shutil.copyfile(other, band)
    out = tmp_path / "out"
    interrupt = InterruptAt(engine(), 1, pass_name="s1")
    with pytest.raises(Interrupted):
        convert_imagery(out, s2=sources, s1=[V1_S1_DIR], executor=interrupt, **OPTIONS)
    assert not list((out / PROGRESS_DIR / "s1").glob("*.json"))
    band.write_bytes(original)
    with caplog.at_level("WARNING"):
        convert_imagery(out, s2=sources, s1=[V1_S1_DIR], executor=engine(), **OPTIONS)
    assert "imagery s2: shards [" in caplog.text
    assert_same_store(s2_sample_store_dir, out)


def test_every_selected_patch_bad_raises_clearly_and_leaves_no_store(tmp_path):
    sources = _copy_sources(tmp_path)
    patch = next(p for p in sources[0].rglob("*") if p.is_dir() and list(p.glob("*_B02.tif")))
    next(patch.glob("*_B02.tif")).write_bytes(b"not a tiff")
    out = tmp_path / "out"
    options = {**OPTIONS, "patch_ids": [patch.name]}
    with pytest.raises(ImageryInputError, match="every selected patch is bad") as raised:
        convert_imagery(out, s2=sources, skip_bad=True, **options)
    assert raised.value.kind == "no-usable-patches"
    report = (out / REPORT_FILE).read_text()
    assert patch.name in report and "corrupt-geotiff" in report
    assert not (out / IMAGERY_STORE).exists() and not (out / PROGRESS_DIR).exists()
    # a rerun with other options is not blocked by what the failed run left
    good = next(p for p in S2_SAMPLES if p != patch.name)
    result = convert_imagery(out, s2=sources, **{**options, "patch_ids": [good, patch.name][:1]})
    assert result.n_patches == 1 and not result.already_complete


def test_run_killed_after_the_final_attributes_leaves_no_progress_folder_for_good(
    tmp_path, monkeypatch
):
    remove = StoreWriter.remove_leftovers
    calls = []

    def killed_before_cleaning(self):
        calls.append(1)
        if len(calls) == 1:
            raise Interrupted
        remove(self)

    monkeypatch.setattr(StoreWriter, "remove_leftovers", killed_before_cleaning)
    out = tmp_path / "out"
    with pytest.raises(Interrupted):
        convert_imagery(out, s2=S2_SOURCES, **OPTIONS)
    assert (out / PROGRESS_DIR).is_dir()
    result = convert_imagery(out, s2=S2_SOURCES, **OPTIONS)
    assert result.already_complete
    assert not (out / PROGRESS_DIR).exists()


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (an exited process nobody reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_worker_processes_exit_with_a_killed_parent(archives, tmp_path):
    s2, s1 = archives
    out = tmp_path / "out"
    record = tmp_path / "children.txt"
    patch_list = tmp_path / "patches.txt"
    patch_list.write_text("\n".join(S2_SAMPLES))
    args = [sys.executable, str(KILL_AFTER_SHARDS), "1", "--out", str(out), "--s2", str(s2),
            "--s1", str(s1), "--metadata", str(METADATA[0]), "--metadata", str(METADATA[1]),
            "--patch-list", str(patch_list), "--allow-missing-s1", "--shard-size", "2",
            "--workers", "2", "--quiet"]  # fmt: skip
    env = {**os.environ, "KILL_RECORD_CHILDREN": str(record)}
    killed = subprocess.run(args, capture_output=True, text=True, timeout=180, env=env, check=False)
    assert killed.returncode == -9, killed.stderr
    children = [int(pid) for pid in record.read_text().split()]
    assert children  # the pool had started its worker processes
    deadline = time.monotonic() + 60  # a liveness bound, not a timing measurement
    while any(_running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if _running(pid)]
