"""``convert`` and ``prepare`` from URLs: archives streamed over HTTP (with a dropped connection
resumed at its byte offset) give the same store as the local files."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from imagery_support import S2_SAMPLES, V1_S1_SAMPLES, assert_same_store, make_archive
from range_server import serve

from bigearthnet_txt.conversion import remote, retry
from bigearthnet_txt.conversion.cli import main
from bigearthnet_txt.conversion.imagery.sources import iter_archive
from bigearthnet_txt.conversion.imagery.store_writer import PROGRESS_DIR
from bigearthnet_txt.conversion.sample_data import (
    METADATA_FILE,
    SNOW_CLOUD_METADATA_FILE,
    V2_REFERENCE_MAPS_DIR,
)

S2_NAME, S1_NAME, MAPS_NAME = (
    "BigEarthNet-S2.tar.zst",
    "BigEarthNet-S1.tar.zst",
    "Reference_Maps.tar.zst",
)
RELEASE_NAME = "BigEarthNet.txt.parquet"
FLAGS = ["--allow-missing-s1", "--allow-missing-reference-maps", "--shard-size", "2", "--quiet"]


def md5_of(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def served(tmp_path_factory, sample_release_file):
    """Folder laid out like the Zenodo record (sample archives, metadata) plus the text release."""
    folder = tmp_path_factory.mktemp("record")
    make_archive(S2_SAMPLES, "BigEarthNet-S2", folder / S2_NAME)
    make_archive({p.name: p for p in V1_S1_SAMPLES.values()}, "BigEarthNet-S1", folder / S1_NAME)
    maps = {p.name: p for p in V2_REFERENCE_MAPS_DIR.glob("*/*")}
    make_archive(maps, "Reference_Maps", folder / MAPS_NAME)
    for file in (METADATA_FILE, SNOW_CLOUD_METADATA_FILE):
        shutil.copyfile(file, folder / file.name)
    shutil.copyfile(sample_release_file, folder / RELEASE_NAME)
    return folder


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(retry, "RETRY_WAIT_S", 0.0)
    monkeypatch.setattr(remote, "BLOCK_SIZE", 64 << 10)


def convert_argv(out, s2, s1, metadata, annotations) -> list[str]:
    argv = [
        "convert",
        "--out",
        str(out),
        "--annotations",
        str(annotations),
        "--s2",
        str(s2),
        "--s1",
        str(s1),
    ]
    for file in metadata:
        argv += ["--metadata", str(file)]
    return argv + FLAGS


@pytest.fixture(scope="module")
def file_store(served, tmp_path_factory):
    out = tmp_path_factory.mktemp("from-files")
    metadata = [served / METADATA_FILE.name, served / SNOW_CLOUD_METADATA_FILE.name]
    assert (
        main(convert_argv(out, served / S2_NAME, served / S1_NAME, metadata, served / RELEASE_NAME))
        == 0
    )
    return out


def test_stream_with_dropped_connection_resumes_at_the_byte_offset(served):
    with serve(served) as server:
        server.drop_at[S2_NAME] = (served / S2_NAME).stat().st_size // 2
        names = [p.name for p in iter_archive(f"{server.url}/{S2_NAME}")]
        assert S2_NAME not in server.drop_at  # the drop happened
        assert server.range_starts(S2_NAME)
    assert names == sorted(S2_SAMPLES)


def test_convert_from_urls_equals_convert_from_files(served, file_store, tmp_path):
    out = tmp_path / "from-urls"
    checksums = tmp_path / "sums.md5"
    checksums.write_text(
        "".join(f"{md5_of(served / n)}  {n}\n" for n in (S2_NAME, S1_NAME))
        + "".join(f"{md5_of(f)}  {f.name}\n" for f in (METADATA_FILE, SNOW_CLOUD_METADATA_FILE))
    )
    with serve(served) as server:
        server.drop_at[S1_NAME] = (served / S1_NAME).stat().st_size // 3
        # the annotations under another name: a URL named like a published file must match its md5
        shutil.copyfile(served / RELEASE_NAME, served / "sample-release.parquet")
        argv = convert_argv(out, f"{server.url}/{S2_NAME}", f"{server.url}/{S1_NAME}", [],
                            f"{server.url}/sample-release.parquet")  # fmt: skip
        assert main([*argv, "--verify", "--checksums", str(checksums)]) == 0
        assert S1_NAME not in server.drop_at
    assert_same_store(file_store, out)
    attrs = json.loads((out / "imagery.zarr" / "zarr.json").read_text())["attributes"]
    assert f"{server.url}/{S2_NAME}" in json.dumps(attrs)
    assert sorted(
        p.name for p in (out / remote.LOCAL_COPIES).iterdir() if p.suffix == ".parquet"
    ) == [METADATA_FILE.name, SNOW_CLOUD_METADATA_FILE.name, "sample-release.parquet"]


def test_streamed_archive_with_wrong_md5_fails(served, tmp_path, capsys):
    checksums = tmp_path / "sums.md5"
    checksums.write_text(
        f"{'0' * 32}  {S2_NAME}\n{md5_of(METADATA_FILE)}  {METADATA_FILE.name}\n"
        f"{md5_of(SNOW_CLOUD_METADATA_FILE)}  {SNOW_CLOUD_METADATA_FILE.name}\n"
    )
    with serve(served) as server:
        argv = [
            "convert",
            "--out",
            str(tmp_path / "out"),
            "--annotations",
            str(served / RELEASE_NAME),
            "--s2",
            f"{server.url}/{S2_NAME}",
            "--verify",
            "--checksums",
            str(checksums),
            *FLAGS,
        ]
        assert main(argv) == 2
    assert (
        f"{S2_NAME}: md5 mismatch, expected {'0' * 32}, got {md5_of(served / S2_NAME)}"
        in capsys.readouterr().err
    )


def sources_file(folder, path):
    names = [
        S2_NAME,
        S1_NAME,
        MAPS_NAME,
        METADATA_FILE.name,
        SNOW_CLOUD_METADATA_FILE.name,
        RELEASE_NAME,
    ]
    path.write_text(
        json.dumps(
            {n: {"bytes": (folder / n).stat().st_size, "md5": md5_of(folder / n)} for n in names}
        )
    )
    return path


def test_prepare_stream_equals_prepare_download(served, tmp_path):
    sources = sources_file(served, tmp_path / "sources.json")
    flags = ["--sources", str(sources), "--allow-missing-s1", "--allow-missing-reference-maps",
             "--shard-size", "2", "--quiet"]  # fmt: skip
    with serve(served) as server:
        assert (
            main(
                [
                    "prepare",
                    "--out",
                    str(tmp_path / "streamed"),
                    "--stream",
                    "--mirror",
                    server.url,
                    *flags,
                ]
            )
            == 0
        )
        assert (
            main(["prepare", "--out", str(tmp_path / "downloaded"), "--mirror", server.url, *flags])
            == 0
        )
        streamed_gets = {r[1] for r in server.requests if r[0] == "GET"}
    assert_same_store(tmp_path / "streamed", tmp_path / "downloaded")
    assert not (tmp_path / "streamed" / "downloads").exists()
    assert (tmp_path / "downloaded" / "downloads" / S2_NAME).read_bytes() == (
        served / S2_NAME
    ).read_bytes()
    assert {S2_NAME, S1_NAME, MAPS_NAME, RELEASE_NAME} <= streamed_gets
    tables = [
        sorted(p.relative_to(tmp_path / out) for p in (tmp_path / out / "data").rglob("*.parquet"))
        for out in ("streamed", "downloaded")
    ]
    assert tables[0] and tables[0] == tables[1]


def test_connection_lost_for_good_then_rerun_resumes_at_the_first_unfinished_shard(
    served, file_store, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(retry, "MAX_RETRIES", 0)
    out = tmp_path / "out"
    metadata = [served / METADATA_FILE.name, served / SNOW_CLOUD_METADATA_FILE.name]
    with serve(served) as server:
        argv = convert_argv(out, f"{server.url}/{S2_NAME}", f"{server.url}/{S1_NAME}", metadata,
                            served / RELEASE_NAME)  # fmt: skip
        server.drop_at[S2_NAME] = (served / S2_NAME).stat().st_size - 2000
        assert main(argv) == 2
        assert "connection lost at byte" in capsys.readouterr().err
        finished = sorted((out / PROGRESS_DIR / "s2").glob("*.json"))
        assert finished
        assert main(argv) == 0
    assert_same_store(file_store, out)
