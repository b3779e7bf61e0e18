"""The ``.tar.zst`` route (archives built like the official ones) equals the folder route;
resume after a real kill (more resume cases on both engines: ``test_imagery_resume``)."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard
from imagery_support import (
    METADATA,
    S2_SAMPLES,
    V1_S1_SAMPLES,
    assert_same_store,
    make_archive,
)

from bigearthnet_txt.conversion.imagery.executors import LocalExecutor
from bigearthnet_txt.conversion.imagery.convert import convert_imagery
from bigearthnet_txt.conversion.imagery.sources import iter_archive
from bigearthnet_txt.conversion.imagery.spill import ShardSpill
from bigearthnet_txt.conversion.imagery.store_writer import PROGRESS_DIR
from bigearthnet_txt.store import ImageryStore


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    folder = tmp_path_factory.mktemp("archives")
    s2 = make_archive(S2_SAMPLES, "BigEarthNet-S2", folder / "BigEarthNet-S2.tar.zst")
    s1_folders = {p.name: p for p in V1_S1_SAMPLES.values()}
    s1 = make_archive(s1_folders, "BigEarthNet-S1", folder / "BigEarthNet-S1.tar.zst")
    return s2, s1


@pytest.fixture(scope="module")
def folder_store(s2_sample_store_dir):
    return s2_sample_store_dir


def test_archive_stream_yields_each_patch_once(archives):
    names = [p.name for p in iter_archive(archives[0])]
    assert names == sorted(S2_SAMPLES)
    assert all(len(p.files) == 12 for p in iter_archive(archives[0]))


@pytest.mark.parametrize("workers", [1, 2])
def test_archive_route_equals_folder_route(archives, folder_store, tmp_path, workers):
    s2, s1 = archives
    convert_imagery(
        tmp_path, s2=[s2], s1=[s1], metadata=METADATA, patch_ids=list(S2_SAMPLES),
        allow_missing_s1=True, shard_size=2, workers=workers, progress=False,
    )  # fmt: skip
    assert_same_store(folder_store, tmp_path)


KILL_AFTER_SHARDS = Path(__file__).with_name("kill_after_shards.py")


def _cli(out, s2, s1, kill_after_shards: int | None = None):
    """The imagery command in a new process; with ``kill_after_shards``, SIGKILLed after that
    many shards."""
    patch_list = out.parent / (out.name + "-patches.txt")
    patch_list.write_text("\n".join(S2_SAMPLES))
    run = (
        ["-m", "bigearthnet_txt.conversion.imagery"]
        if kill_after_shards is None
        else [str(KILL_AFTER_SHARDS), str(kill_after_shards)]
    )
    args = [sys.executable, *run, "--out", str(out), "--s2", str(s2), "--s1", str(s1),
            "--metadata", str(METADATA[0]), "--metadata", str(METADATA[1]),
            "--patch-list", str(patch_list), "--allow-missing-s1", "--shard-size", "2",
            "--quiet"]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_kill_after_first_shard_then_resume_equals_uninterrupted(archives, folder_store, tmp_path):
    s2, s1 = archives
    out = tmp_path / "out"
    killed = _cli(out, s2, s1, kill_after_shards=1)
    assert killed.returncode == -9, killed.stderr
    assert len(list((out / PROGRESS_DIR / "s2").glob("*.json"))) == 1
    assert not (out / "patches.parquet").exists()
    with pytest.raises(ValueError, match="not finished"):
        _ = ImageryStore(out).arrays
    # a second kill in the S1 pass, after the S2 pass has finished
    killed = _cli(out, s2, s1, kill_after_shards=4)  # 3 S2 shards left, then 1 S1
    assert killed.returncode == -9, killed.stderr
    assert len(list((out / PROGRESS_DIR / "s1").glob("*.json"))) == 1
    # what a kill in the middle of writing a shard could leave: a temporary file, a torn shard file
    for shard in (2, 3):
        torn = out / "imagery.zarr" / "s1" / "c" / str(shard) / "0" / "0" / "0"
        torn.parent.mkdir(parents=True, exist_ok=True)
        torn.write_bytes(b"torn")
        torn.with_name("0.partial").write_bytes(b"torn")
    finished = _cli(out, s2, s1)
    assert finished.returncode == 0, finished.stderr
    assert_same_store(folder_store, out)
    assert not (out / PROGRESS_DIR).exists()
    assert not list((out / "imagery.zarr").rglob("*.partial"))
    again = _cli(out, s2, s1)  # a finished store is left as is
    assert again.returncode == 0, again.stderr
    assert_same_store(folder_store, out)


def _archive_with_wrong_pixels(good: Path, out: Path) -> Path:
    """``good`` with one pixel byte of every B02 file changed; only the zstd frame checksum,
    checked at the end of the stream, tells (the checksum of the good bytes is kept)."""
    tar = bytearray(good_tar(good))
    with tarfile.open(fileobj=io.BytesIO(bytes(tar)), mode="r:") as archive:
        for member in archive.getmembers():
            if member.name.endswith("_B02.tif"):
                tar[member.offset_data + 400] ^= 0xFF
    compressor = zstandard.ZstdCompressor(write_checksum=True)
    out.write_bytes(compressor.compress(bytes(tar))[:-4] + compressor.compress(good_tar(good))[-4:])
    return out


def good_tar(archive: Path) -> bytes:
    return zstandard.ZstdDecompressor().stream_reader(archive.read_bytes()).read()


def test_resume_rewrites_shards_built_from_other_archive_bytes(archives, folder_store, tmp_path):
    """A run over a corrupt archive killed before the end of the stream (which would have told)
    leaves shards with wrong pixels; the rerun over the good archive finds their bytes differ."""
    s2, s1 = archives
    source = tmp_path / "BigEarthNet-S2.tar.zst"
    _archive_with_wrong_pixels(s2, source)
    out = tmp_path / "out"
    killed = _cli(out, source, s1, kill_after_shards=1)
    assert killed.returncode == -9, killed.stderr
    assert len(list((out / PROGRESS_DIR / "s2").glob("*.json"))) == 1
    source.write_bytes(s2.read_bytes())
    finished = _cli(out, source, s1)
    assert finished.returncode == 0, finished.stderr
    assert "built from other source bytes; writing them again" in finished.stderr
    assert_same_store(folder_store, out)


def test_archive_route_with_patches_spilled_to_disk_equals_folder_route(
    archives, folder_store, tmp_path, monkeypatch
):
    spilled = []
    add = ShardSpill.add

    def add_and_note(self, shard, item):
        add(self, shard, item)
        spilled.append(shard in self.on_disk)

    monkeypatch.setattr(ShardSpill, "add", add_and_note)
    s2, s1 = archives
    convert_imagery(
        tmp_path, s2=[s2], s1=[s1], metadata=METADATA, patch_ids=list(S2_SAMPLES),
        allow_missing_s1=True, shard_size=2, progress=False,
        executor=LocalExecutor(max_open_shards=1),
    )  # fmt: skip
    assert any(spilled)
    assert_same_store(folder_store, tmp_path)
    assert not (tmp_path / ".imagery-staging").exists()


def test_shard_spill_keeps_max_open_shards_in_memory(tmp_path):
    spill = ShardSpill(tmp_path / "staging" / "s2", max_open=1)
    for shard, item in [(0, "a"), (1, "b"), (0, "c"), (1, "d"), (2, "e")]:
        spill.add(shard, item)
    assert list(spill.memory) == [0] and sorted(spill.on_disk) == [1, 2]
    assert spill.pop(1) == ["b", "d"] and spill.pop(0) == ["a", "c"] and spill.pop(3) == []
    spill.close()
    assert not (tmp_path / "staging").exists()
