"""``download``: resume after a dropped connection, md5 verification, disk check, configurable
sources."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import namedtuple
from types import SimpleNamespace

import pytest
from imagery_support import S2_SAMPLES, make_archive
from range_server import serve

from bigearthnet_txt.conversion import download as dl
from bigearthnet_txt.conversion import retry
from bigearthnet_txt.conversion.cli import main
from bigearthnet_txt.conversion.remote import ChecksumError
from bigearthnet_txt.conversion.sample_data import V2_DIR

S2_NAME = "BigEarthNet-S2.tar.zst"


def md5_of(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Folder with a sample ``BigEarthNet-S2.tar.zst`` and a sources file giving its size and
    md5."""
    folder = tmp_path_factory.mktemp("served")
    archive = make_archive(S2_SAMPLES, "BigEarthNet-S2", folder / S2_NAME)
    sources = folder.parent / "sources.json"
    sources.write_text(
        json.dumps({S2_NAME: {"bytes": archive.stat().st_size, "md5": md5_of(archive)}})
    )
    return archive, sources


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch):
    monkeypatch.setattr(retry, "RETRY_WAIT_S", 0.0)


def test_dropped_connection_resumes_with_a_range_request_and_verifies(served, tmp_path, capsys):
    archive, sources = served
    drop = archive.stat().st_size // 2
    with serve(archive.parent) as server:
        server.drop_at[S2_NAME] = drop
        code = main(["download", "--to", str(tmp_path), "--what", "s2", "--mirror", server.url,
                     "--sources", str(sources), "--quiet"])  # fmt: skip
        assert code == 0
        assert server.range_starts(S2_NAME) == [drop]
    assert (tmp_path / S2_NAME).read_bytes() == archive.read_bytes()
    assert (tmp_path / (S2_NAME + ".md5")).read_text().split()[0] == md5_of(archive)
    assert not (tmp_path / (S2_NAME + ".part")).exists()
    assert f"verified {S2_NAME}" in capsys.readouterr().out


def test_part_left_by_an_earlier_run_is_hashed_and_continued(served, tmp_path):
    archive, sources = served
    half = archive.stat().st_size // 3
    (tmp_path / (S2_NAME + ".part")).write_bytes(archive.read_bytes()[:half])
    with serve(archive.parent) as server:
        dl.download(["s2"], tmp_path, mirrors=[server.url], sources_file=sources, progress=False)
        assert server.range_starts(S2_NAME) == [half]
        # verified files are neither fetched nor hashed again
        dl.download(["s2"], tmp_path, mirrors=[server.url], sources_file=sources, progress=False)
        assert len([r for r in server.requests if r[0] == "GET"]) == 1
    assert md5_of(tmp_path / S2_NAME) == md5_of(archive)


def fetched_once(served, folder, server):
    """``folder`` after one verified download of the sample archive."""
    _, sources = served
    dl.download(["s2"], folder, mirrors=[server.url], sources_file=sources, progress=False)
    server.requests.clear()
    return folder / S2_NAME


@pytest.mark.parametrize("sidecar", [None, "", "\x00\x00garbled"])
def test_file_without_a_readable_sidecar_is_hashed_not_fetched_again(served, tmp_path, sidecar):
    archive, sources = served
    with serve(archive.parent) as server:
        target = fetched_once(served, tmp_path, server)
        marker = tmp_path / (S2_NAME + ".md5")
        if sidecar is None:  # killed between the rename and the sidecar
            marker.unlink()
        else:  # killed while the sidecar was written
            marker.write_text(sidecar)
        dl.download(["s2"], tmp_path, mirrors=[server.url], sources_file=sources, progress=False)
        assert server.requests == []
    assert target.read_bytes() == archive.read_bytes()
    assert marker.read_text().split()[0] == md5_of(archive)


def test_file_without_a_sidecar_that_differs_is_set_aside_and_fetched(served, tmp_path):
    archive, sources = served
    with serve(archive.parent) as server:
        target = fetched_once(served, tmp_path, server)
        (tmp_path / (S2_NAME + ".md5")).unlink()
        wrong = b"x" * archive.stat().st_size
        target.write_bytes(wrong)
        dl.download(["s2"], tmp_path, mirrors=[server.url], sources_file=sources, progress=False)
        assert [r[0] for r in server.requests] == ["GET"]
    assert target.read_bytes() == archive.read_bytes()
    assert (tmp_path / (S2_NAME + ".corrupt")).read_bytes() == wrong


def test_sidecar_is_written_before_the_verified_file_takes_its_name(served, tmp_path, monkeypatch):
    archive, sources = served
    replace = dl.os.replace

    def killed_at_the_rename(src, dst):
        if str(src).endswith(".part"):
            raise KeyboardInterrupt
        replace(src, dst)

    monkeypatch.setattr(dl.os, "replace", killed_at_the_rename)
    with serve(archive.parent) as server:
        with pytest.raises(KeyboardInterrupt):
            dl.download(
                ["s2"], tmp_path, mirrors=[server.url], sources_file=sources, progress=False
            )
        assert (tmp_path / (S2_NAME + ".md5")).read_text().split()[0] == md5_of(archive)
        assert not (tmp_path / (S2_NAME + ".md5.tmp")).exists()
        monkeypatch.setattr(dl.os, "replace", replace)
        server.requests.clear()
        dl.download(["s2"], tmp_path, mirrors=[server.url], sources_file=sources, progress=False)
        assert server.range_starts(S2_NAME) in ([], [archive.stat().st_size])  # nothing sent again
    assert (tmp_path / S2_NAME).read_bytes() == archive.read_bytes()


def test_corrupted_byte_gives_checksum_error_and_keeps_the_file(served, tmp_path):
    archive, sources = served
    bad_folder = tmp_path / "mirror"
    bad_folder.mkdir()
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad_folder / S2_NAME).write_bytes(bytes(data))
    out = tmp_path / "out"
    with serve(bad_folder) as server, pytest.raises(ChecksumError) as err:
        dl.download(["s2"], out, mirrors=[server.url], sources_file=sources, progress=False)
    message = str(err.value)
    assert (
        S2_NAME in message
        and md5_of(archive) in message
        and hashlib.md5(data).hexdigest() in message
    )
    assert (out / (S2_NAME + ".corrupt")).read_bytes() == bytes(data)
    assert not (out / S2_NAME).exists() and not (out / (S2_NAME + ".part")).exists()


def test_checksum_error_through_the_cli_is_a_clear_message(served, tmp_path, capsys):
    archive, _ = served
    sources_bad = tmp_path / "sources.toml"
    sources_bad.write_text(f'["{S2_NAME}"]\nbytes = {archive.stat().st_size}\nmd5 = "{"0" * 32}"\n')
    code = main(
        [
            "download",
            "--to",
            str(tmp_path / "out"),
            "--what",
            "s2",
            "--source-dir",
            str(archive.parent),
            "--sources",
            str(sources_bad),
            "--quiet",
        ]
    )
    assert code == 2
    assert (
        f"{S2_NAME}: md5 mismatch, expected {'0' * 32}, got {md5_of(archive)}"
        in capsys.readouterr().err
    )


def test_insufficient_disk_is_reported_before_any_transfer(served, tmp_path, monkeypatch):
    archive, sources = served
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with (
        serve(archive.parent) as server,
        pytest.raises(dl.DiskSpaceError, match="only 0.00 GB free"),
    ):
        dl.download(["s2"], tmp_path, mirrors=[server.url], sources_file=sources, progress=False)
    assert server.requests == []
    with pytest.raises(dl.DiskSpaceError, match=r"117\.97 GB still to download"):
        dl.check_disk_space(
            dl.resolve_sources(dl.names_for(["s2", "s1", "reference-maps"])), tmp_path
        )


def test_mirrors_are_tried_in_order(served, tmp_path):
    archive, sources = served
    with serve(archive.parent) as server:
        dl.download(
            ["s2"],
            tmp_path,
            mirrors=[server.url + "/missing", server.url],
            sources_file=sources,
            progress=False,
        )
        assert [r[1] for r in server.requests if r[0] == "GET"] == [f"missing/{S2_NAME}", S2_NAME]
    assert md5_of(tmp_path / S2_NAME) == md5_of(archive)


def test_local_folder_source_is_verified_against_the_published_md5(tmp_path):
    files = dl.download(["metadata"], tmp_path, source_dir=V2_DIR, progress=False)
    for name, path in files.items():
        assert path.read_bytes() == (V2_DIR / name).read_bytes()
        assert md5_of(path) == dl.catalogue()[name].md5


def test_official_sources_are_zenodo_and_the_hub():
    s2, text = dl.resolve_sources(dl.names_for(["s2", "text"]))
    assert s2.urls == ("https://zenodo.org/records/10891137/files/BigEarthNet-S2.tar.zst",)
    assert s2.bytes == 63_251_710_377 and s2.md5 == "2245ed2d1a93f6ce637d839bc856396e"
    assert text.urls == (
        "hf://datasets/BIFOLD-BigEarthNetv2-0/BigEarthNet.txt/BigEarthNet.txt.parquet",
    )
    with pytest.raises(ValueError, match="unknown file group"):
        dl.names_for(["s3"])


def test_published_files_come_from_one_table(tmp_path):
    from bigearthnet_txt.conversion.cli import build_parser
    from bigearthnet_txt.conversion.commands import prepare
    from bigearthnet_txt.conversion.commands.download import ALL_GROUPS, parse_groups
    from bigearthnet_txt.conversion.imagery.checksums import (
        FILE_GROUPS,
        PUBLISHED_FILES,
        RELEASE_FILE,
    )
    from bigearthnet_txt.schema import RELEASE_FILENAME

    assert list(FILE_GROUPS) == [*PUBLISHED_FILES, RELEASE_FILENAME]
    assert dl.names_for(parse_groups(ALL_GROUPS)) == list(FILE_GROUPS)
    sums = {name: (f.bytes, f.md5) for name, f in dl.catalogue().items()}
    assert sums == {**PUBLISHED_FILES, RELEASE_FILENAME: RELEASE_FILE}

    args = build_parser().parse_args(["prepare", "--out", str(tmp_path)])
    files = {name: f"/sources/{name}" for name in FILE_GROUPS}
    convert = vars(build_parser().parse_args(prepare.convert_argv(args, files, None)))
    passed = {str(convert["annotations"]): "text"}
    for group in ("s2", "s1", "reference-maps", "metadata"):
        passed.update({str(path): group for path in convert[group.replace("-", "_")]})
    assert passed == {f"/sources/{name}": group for name, group in FILE_GROUPS.items()}


@pytest.fixture
def fake_hub(tmp_path, monkeypatch, sample_release_file):
    """``hf_hub_download`` copying the sample release; ``etag`` is what the Hub announces."""
    import huggingface_hub

    hub = SimpleNamespace(
        calls=[], etag=hashlib.sha256(sample_release_file.read_bytes()).hexdigest()
    )

    def fake_download(repo_id, filename, repo_type, local_dir):
        hub.calls.append((repo_id, filename, repo_type))
        target = tmp_path / "hub" / filename
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(sample_release_file, target)
        return str(target)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(
        huggingface_hub, "get_hf_file_metadata", lambda url: SimpleNamespace(etag=f'"{hub.etag}"')
    )
    return hub


def test_release_from_the_hub_is_verified_by_the_hubs_sha256(
    tmp_path, fake_hub, sample_release_file
):
    release = dl.catalogue()["BigEarthNet.txt.parquet"]
    path = dl.fetch(release, tmp_path / "out", progress=False)
    assert fake_hub.calls == [
        ("BIFOLD-BigEarthNetv2-0/BigEarthNet.txt", "BigEarthNet.txt.parquet", "dataset")
    ]
    assert path.read_bytes() == sample_release_file.read_bytes()
    fake_hub.etag = "0" * 64
    with pytest.raises(ChecksumError, match=f"sha256 mismatch, expected {'0' * 64}"):
        dl.fetch(release, tmp_path / "other", progress=False)
    assert (tmp_path / "other" / "BigEarthNet.txt.parquet.corrupt").is_file()
