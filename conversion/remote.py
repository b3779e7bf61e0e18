"""Remote imagery sources: an archive given as a URL (``https://…``, ``hf://…``, any fsspec
protocol) is read as a stream, with no local copy.

``source_argument`` is the argparse ``type`` for source flags: a URL stays a string (``Path`` would
fold ``//``), anything else becomes a ``Path``. ``as_source`` turns a URL into a ``RemoteFile``,
which offers the few ``Path`` methods the conversion uses (``name``, ``exists``, ``is_file``,
``stat``, ``resolve``, ``parent``, ``/``, ``open``).

``RemoteFile.open`` returns a ``ResumingReader``: a forward-only stream over fsspec that, when the
connection drops, reopens the file and seeks to the byte where it stopped (HTTP range request),
as ``retry.retry_transient`` allows; the decompressor above it never notices. When the retries run
out the read fails with ``RemoteReadError`` (an ``OSError``) and a rerun of the same command resumes
at the first unfinished shard. With an expected md5 (``--verify``) the stream is hashed on the fly
and a mismatch at its end raises ``ChecksumError``.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import fsspec

from bigearthnet_txt.conversion.download import SourceFile, catalogue, fetch
from bigearthnet_txt.conversion.imagery.checksums import PUBLISHED_FILES, ChecksumError
from bigearthnet_txt.conversion.imagery.metadata import METADATA_NAMES
from bigearthnet_txt.conversion.retry import retry_transient
from bigearthnet_txt.store import is_url as is_url_string

__all__ = ["ChecksumError", "RemoteFile", "RemoteReadError", "ResumingReader"]

BLOCK_SIZE = 16 << 20


class RemoteReadError(OSError):
    """A remote file could not be read (after retries)."""


def is_url(source: object) -> bool:
    """True for a ``RemoteFile`` and for what the read side takes as a URL
    (``bigearthnet_txt.store.is_url``); local paths are not URLs."""
    return isinstance(source, RemoteFile) or is_url_string(source)


def source_argument(text: str) -> str | Path:
    """argparse ``type`` for a source: URLs stay strings, anything else is a ``Path``."""
    return text if is_url(text) else Path(text)


def as_source(source: object) -> Path | RemoteFile:
    """``RemoteFile`` for a URL, ``Path`` otherwise (a ``RemoteFile`` is returned as is)."""
    if isinstance(source, RemoteFile):
        return source
    return RemoteFile(source) if is_url(source) else Path(source)


@dataclass(frozen=True)
class RemoteStat:
    st_size: int


class RemoteFile:
    """A file behind a URL, with the ``Path`` methods the imagery conversion uses."""

    def __init__(self, url: str, expected_md5: str | None = None):
        self.url = url.rstrip("/")
        self.fs, self.path = fsspec.core.url_to_fs(self.url)
        self.expected_md5 = expected_md5

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"RemoteFile({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemoteFile) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __truediv__(self, name: str) -> RemoteFile:
        return RemoteFile(f"{self.url}/{name}")

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1].split("?", 1)[0]

    @property
    def parent(self) -> RemoteFile:
        return RemoteFile(self.url.rsplit("/", 1)[0])

    def exists(self) -> bool:
        """True for a file or a directory (a folder source, e.g. ``s3://bucket/BigEarthNet-S2``)."""
        try:
            return self.is_file() or self.fs.isdir(self.path)
        except (OSError, ValueError):
            return False

    def is_file(self) -> bool:
        try:
            return self.fs.info(self.path).get("type", "file") == "file"
        except (OSError, ValueError):
            return False

    def stat(self) -> RemoteStat:
        size = self.fs.size(self.path)
        if size is None:
            raise RemoteReadError(
                f"{self.url}: the server does not announce the file size, which streaming with "
                "resume needs; download the file instead (bigearthnet-txt download)"
            )
        return RemoteStat(int(size))

    def resolve(self) -> RemoteFile:
        return self

    def open(self, mode: str = "rb") -> ResumingReader:
        if mode != "rb":
            raise ValueError(f"{self.url}: remote sources are read-only (mode 'rb')")
        return ResumingReader(self)


class ResumingReader:
    """Forward-only binary stream over a ``RemoteFile`` that reopens at its offset after a drop."""

    def __init__(self, remote: RemoteFile):
        self.remote = remote
        self.size = remote.stat().st_size
        self.position = 0
        self.digest = hashlib.md5() if remote.expected_md5 else None
        self._file = None

    def _reopen(self) -> None:
        self._close_file()
        self._file = self.remote.fs.open(self.remote.path, "rb", block_size=BLOCK_SIZE)
        if self.position:
            self._file.seek(self.position)

    def _close_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                self._file.close()
            self._file = None

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.size - self.position
        if self.position >= self.size or size == 0:
            self._check_digest()
            return b""
        data = retry_transient(lambda: self._read_once(size), give_up=self._connection_lost)
        self.position += len(data)
        if self.digest is not None:
            self.digest.update(data)
        return data

    def _read_once(self, size: int) -> bytes:
        """One attempt: read from the open connection (reopened at ``position`` when needed)."""
        try:
            if self._file is None:
                self._reopen()
            data = self._file.read(min(size, self.size - self.position))
        except BaseException:
            self._close_file()
            raise
        if not data:
            self._close_file()
            raise RemoteReadError(
                f"{self.remote}: stream ended at byte {self.position} of {self.size}"
            )
        return data

    def _connection_lost(self, err: BaseException, retries: int) -> RemoteReadError:
        return RemoteReadError(
            f"{self.remote}: connection lost at byte {self.position} of {self.size} "
            f"after {retries} retries ({err}); rerun the command to resume at the first "
            "unfinished shard"
        )

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _check_digest(self) -> None:
        if self.digest is None:
            return
        got, self.digest = self.digest.hexdigest(), None
        if got != self.remote.expected_md5:
            raise ChecksumError(self.remote.name, self.remote.expected_md5, got, str(self.remote))

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._close_file()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def expect_md5(sources: Iterable[object], expected: Mapping[str, str] | None) -> None:
    """Attach the expected md5 (by file name; default: the published sums) to remote sources, so
    that their stream is verified on the fly."""
    if expected is None:
        expected = {name: md5 for name, (_, md5) in PUBLISHED_FILES.items()}
    for source in sources:
        if isinstance(source, RemoteFile):
            if source.name not in expected:
                raise ValueError(
                    f"{source}: no checksum known for {source.name!r}; give a checksum list"
                )
            source.expected_md5 = expected[source.name]


LOCAL_COPIES = ".sources"


def localize(source: object, folder: Path, progress: bool = True) -> Path:
    """A local path for a Parquet input: a URL is fetched (resumable, md5-verified when its name is
    a published file) into ``folder``; local paths are returned as they are."""
    if not is_url(source):
        return Path(source)
    url = str(source)
    name = RemoteFile(url).name
    known = catalogue().get(name, SourceFile(name, None, None))
    return fetch(SourceFile(name, known.bytes, known.md5, (url,)), folder, progress)


def localize_arguments(args) -> None:
    """Replace URL ``--annotations``/``--metadata`` of parsed arguments with local copies in
    ``OUT/.sources`` (Parquet needs random access; archives stay streamed). Without ``--metadata``,
    the metadata files beside the first URL archive are fetched."""
    folder = Path(args.out) / LOCAL_COPIES
    progress = not getattr(args, "quiet", False)
    annotations = getattr(args, "annotations", None)
    if isinstance(annotations, list):
        args.annotations = [localize(a, folder, progress) for a in annotations]
    elif annotations is not None:
        args.annotations = localize(annotations, folder, progress)
    archives = [
        s for flag in ("s2", "s1", "reference_maps") for s in getattr(args, flag, None) or ()
    ]
    remote_archives = [RemoteFile(str(s)) for s in archives if is_url(s)]
    if remote_archives and not getattr(args, "metadata", None):
        beside = [remote_archives[0].parent / name for name in METADATA_NAMES]
        args.metadata = [str(m) for m in beside if m.is_file()]
        if not args.metadata:
            raise FileNotFoundError(
                f"{remote_archives[0].parent}: no metadata.parquet beside the archive; "
                "give --metadata"
            )
    if getattr(args, "metadata", None):
        args.metadata = [localize(m, folder, progress) for m in args.metadata]
