"""Band-file sources: folders (v2, pre-release flat ``.tiff``, v1.0)
and streamed ``.tar.zst`` archives.

Every source yields ``PatchFiles``: the name of one patch (the folder holding its band files: a v2
``patch_id``/``s1_name``, or a v1.0 name) and ``{band: path or bytes}`` for its GeoTIFFs. Band keys
are ``B01`` … ``B12``/``B8A``, ``VV``/``VH`` or ``reference_map``; other files (e.g. v1.0
``_labels_metadata.json``) are ignored.

Every band file must belong to its folder's patch: a band file named after another patch in a
patch folder (``foreign-band``) or a band given twice (``X_B02.tif`` and ``X_B02.tiff``,
``duplicate-band``) makes the patch bad (``PatchFiles.error``, raised or recorded with
``--skip-bad`` when the patch is decoded). A folder holding no file of its own name is a flat folder
of several patches: its files are grouped by the patch name in their file names.

Archives are read as one stream (``zstandard`` + ``tarfile`` mode ``'r|'``): no extraction, at
most one patch's files in memory; a band member larger than ``MAX_MEMBER_BYTES`` is not read and
makes its patch bad (``oversized-member``). Members are expected grouped by patch folder (the
official archives are sorted); a truncated archive (also one cut inside the
zstd frame checksum: ``ZstdFrameTracker``), a member path escaping the archive (``../``, absolute)
or a damaged stream raises ``ImageryInputError`` naming the archive and member. A stream's integrity
is only known at its end (zstd frame checksum, end-of-archive marker, the md5 of ``--verify``):
those failures have the kinds in ``INTEGRITY_KINDS``, and the patches already read from the stream
cannot be trusted. A remote stream that stops for good (``RemoteReadError``) is kind ``unreadable``:
what was read before is sound.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import xxhash
import zstandard

from bigearthnet_txt.conversion.imagery.errors import ImageryInputError
from bigearthnet_txt.conversion.imagery.checksums import ChecksumError
from bigearthnet_txt.schema import S1_BANDS, S2_BANDS

REFERENCE_MAP_BAND = "reference_map"
BAND_SUFFIXES: tuple[str, ...] = (REFERENCE_MAP_BAND, *S2_BANDS, *S1_BANDS)
TIFF_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff")
TAR_BLOCK = 512
INTEGRITY_KINDS = frozenset({"truncated-archive", "checksum-mismatch"})
MAX_MEMBER_BYTES = 8 << 20  # a real band file has at most ~60 KB


@dataclass
class PatchFiles:
    """The band files of one patch: ``files[band]`` is a ``Path`` (folders) or ``bytes`` (archives);
    ``labels[band]`` names the file in messages (``archive.tar.zst:member`` for archives)."""

    name: str
    files: dict[str, Path | bytes] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    error: ImageryInputError | None = None

    def add(self, file_patch: str, band: str, file: Path | bytes | str, label: str) -> None:
        """Add the band file ``label`` parsed as ``(file_patch, band)``; a file of another patch or
        a second file of one band sets ``error`` (the first problem found is kept)."""
        if file_patch != self.name:
            self.reject(
                "foreign-band",
                f"{label}: band file of patch {file_patch} in the folder of patch {self.name}",
                label,
            )
        elif band in self.files:
            self.reject(
                "duplicate-band",
                f"{label}: second file of band {band} of patch {self.name} "
                f"(first: {self.labels[band]})",
                label,
            )
        else:
            self.files[band] = file
            self.labels[band] = label

    def reject(self, kind: str, message: str, label: str) -> None:
        """Mark the patch bad (the first problem found is kept)."""
        if self.error is None:
            self.error = ImageryInputError(message, kind=kind, path=label, patch=self.name)


def patch_digest(patch: PatchFiles) -> str | None:
    """128-bit XXH3 digest (hex) of the raw band files of a patch read from an archive (bands in
    name order; a fast hash: it tells changed source bytes apart, it is no protection against
    crafted ones); None for a patch whose files are on disk or behind URLs."""
    if not patch.files or not all(isinstance(f, bytes) for f in patch.files.values()):
        return None
    digest = xxhash.xxh3_128()
    for band in sorted(patch.files):
        data = patch.files[band]
        digest.update(f"{band}:{len(data)}:".encode())
        digest.update(data)
    return digest.hexdigest()


def split_band_filename(filename: str) -> tuple[str, str] | None:
    """``"<name>_<band>.tif[f]"`` -> ``(name, band)``; ``None`` for any other file."""
    stem, ext = os.path.splitext(filename)
    if ext.lower() not in TIFF_EXTENSIONS:
        return None
    for band in BAND_SUFFIXES:
        if stem.endswith("_" + band):
            return stem[: -len(band) - 1], band
    return None


def group_folder(folder_name: str, entries: list[tuple[str, object, str]]) -> list[PatchFiles]:
    """The patches of one folder from its ``(filename, file, label)`` entries (sorted by name).

    A folder holding a band file of its own name is one patch folder (files of other patches in it
    make the patch bad); otherwise its band files are grouped by their patch names."""
    parsed = [(split_band_filename(filename), file, label) for filename, file, label in entries]
    parsed = [(names, file, label) for names, file, label in parsed if names is not None]
    if any(file_patch == folder_name for (file_patch, _), _, _ in parsed):
        patch = PatchFiles(folder_name)
        for (file_patch, band), file, label in parsed:
            patch.add(file_patch, band, file, label)
        return [patch]
    by_name: dict[str, PatchFiles] = {}
    for (file_patch, band), file, label in parsed:
        by_name.setdefault(file_patch, PatchFiles(file_patch)).add(file_patch, band, file, label)
    return list(by_name.values())


def is_archive(path: Path | str) -> bool:
    """True for a ``.tar.zst`` / ``.tzst`` file."""
    from bigearthnet_txt.conversion.remote import is_url  # fsspec and aiohttp: only for archives

    name = str(path).lower()
    return name.endswith((".tar.zst", ".tzst")) and (is_url(path) or Path(path).is_file())


def iter_folder(root: Path | str) -> Iterator[PatchFiles]:
    """Walk ``root`` (sorted) and yield one ``PatchFiles`` per folder holding band GeoTIFFs.

    Works for the v2 layout (``<product>/<patch>/``), the flat pre-release and v1.0 layouts
    (``<patch>/``), a single patch folder and a folder of loose band files (``group_folder``).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: imagery folder not found")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        folder = Path(dirpath)
        entries = [(name, folder / name, str(folder / name)) for name in sorted(filenames)]
        yield from group_folder(folder.name, entries)


class _TailCheckingReader:
    """File-like wrapper counting the decompressed bytes and keeping the last 1 KiB."""

    def __init__(self, raw):
        self._raw = raw
        self.total = 0
        self.tail = b""

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.total += len(data)
        self.tail = (self.tail + data)[-2 * TAR_BLOCK :]
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_SKIPPABLE_MAGIC_HIGH = 0x184D2A5  # skippable frames: magic 0x184D2A50 ... 0x184D2A5F
_BLOCK_HEADER = 3
_RLE_BLOCK = 1


class ZstdFrameTracker:
    """Follows the frame and block boundaries of a zstd stream (RFC 8878, section 3.1) from its
    compressed bytes as they are read, without decompressing them.

    ``zstandard``'s stream reader returns what it could decompress when its input ends inside a
    frame, and the frame checksum is only verified when the frame is complete: a stream cut inside
    its last 4 bytes (the checksum) decompresses to the whole content without an error.
    ``at_frame_end`` tells whether the bytes fed so far end exactly at the end of a frame.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()  # header bytes of the frame or block being read
        self._skip = 0  # bytes of block content (and checksum) still to pass
        self._in_frame = False
        self._checksum = False
        self.broken = False
        self.frames = 0

    @property
    def at_frame_end(self) -> bool:
        """True when the stream so far ends at the end of a (complete) frame."""
        return not (self.broken or self._in_frame or self._skip or self._buffer)

    def feed(self, data: bytes) -> None:
        """Account for the next compressed bytes of the stream."""
        view, pos = memoryview(data), 0
        while pos < len(view) and not self.broken:
            if self._skip:
                step = min(self._skip, len(view) - pos)
                self._skip -= step
                pos += step
                continue
            need = self._needed()
            take = min(need - len(self._buffer), len(view) - pos)
            self._buffer += view[pos : pos + take]
            pos += take
            if len(self._buffer) == self._needed():
                self._advance()

    def _needed(self) -> int:
        if self._in_frame:
            return _BLOCK_HEADER
        if len(self._buffer) < 5:
            return 5
        if int.from_bytes(self._buffer[:4], "little") >> 4 == _SKIPPABLE_MAGIC_HIGH:
            return 8
        if bytes(self._buffer[:4]) != _ZSTD_MAGIC:
            return len(self._buffer)  # not a zstd frame: _advance marks the stream broken
        return zstandard.frame_header_size(bytes(self._buffer[:5]))

    def _advance(self) -> None:
        header, self._buffer = bytes(self._buffer), bytearray()
        if self._in_frame:
            value = int.from_bytes(header, "little")
            last, kind, size = value & 1, (value >> 1) & 3, value >> 3
            self._skip = 1 if kind == _RLE_BLOCK else size
            if last:
                self._skip += 4 if self._checksum else 0
                self._in_frame = False
                self.frames += 1
        elif len(header) < 5:
            self._buffer = bytearray(header)  # magic + descriptor still incomplete
        elif int.from_bytes(header[:4], "little") >> 4 == _SKIPPABLE_MAGIC_HIGH:
            if len(header) == 8:
                self._skip = int.from_bytes(header[4:8], "little")
                self.frames += 1
            else:
                self._buffer = bytearray(header)
        elif header[:4] != _ZSTD_MAGIC:
            self.broken = True
        elif len(header) == zstandard.frame_header_size(header[:5]):
            self._checksum = zstandard.get_frame_parameters(header).has_checksum
            self._in_frame = True
        else:
            self._buffer = bytearray(header)


class _TrackedFile:
    """Read-only file wrapper feeding every byte read to a :class:`ZstdFrameTracker`."""

    def __init__(self, raw):
        self._raw = raw
        self.tracker = ZstdFrameTracker()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.tracker.feed(data)
        return data


def _check_member_name(archive: Path, name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name.startswith(("/", "\\")):
        raise ImageryInputError(
            f"{archive}: unsafe member path {name!r} (absolute or containing '..'); "
            "refusing to read it",
            kind="unsafe-member",
            path=f"{archive}:{name}",
        )
    return path


def iter_archive(archive: Path | str) -> Iterator[PatchFiles]:
    """Stream a ``.tar.zst`` archive and yield one ``PatchFiles`` per patch folder,
    in archive order.

    Every band file must be named after its folder (``PatchFiles.add``)."""
    from bigearthnet_txt.conversion.remote import as_source

    archive = as_source(archive)
    current: PatchFiles | None = None
    current_dir: PurePosixPath | None = None
    last_member = "(start of archive)"
    with archive.open("rb") as raw:
        fh = _TrackedFile(raw)
        reader = _TailCheckingReader(
            zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True)
        )
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    path = _check_member_name(archive, member.name)
                    last_member = member.name
                    if not member.isfile():
                        continue
                    parsed = split_band_filename(path.name)
                    if parsed is None:
                        continue
                    if path.parent != current_dir:
                        if current is not None and (current.files or current.error):
                            yield current
                        current, current_dir = PatchFiles(path.parent.name), path.parent
                    label = f"{archive}:{member.name}"
                    if member.size > MAX_MEMBER_BYTES:
                        current.reject(
                            "oversized-member",
                            f"{label}: {member.size} bytes, more than a band file can have "
                            f"({MAX_MEMBER_BYTES}); not read",
                            label,
                        )
                        continue
                    data = tar.extractfile(member).read()
                    if len(data) != member.size:
                        raise tarfile.ReadError("unexpected end of data")
                    current.add(*parsed, data, label)
            reader.drain()
        except ChecksumError as err:
            raise ImageryInputError(
                f"{archive}: corrupt .tar.zst stream: {err}",
                kind="checksum-mismatch",
                path=str(archive),
            ) from err
        except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as err:
            if _is_interruption(err):
                raise ImageryInputError(
                    f"{archive}: reading stopped after member {last_member}: {err}",
                    kind="unreadable",
                    path=str(archive),
                ) from err
            raise _truncated(archive, last_member, err) from err
        if not fh.tracker.at_frame_end:
            raise _truncated(
                archive, last_member, "the zstd stream ends inside a frame (cut short)"
            )
        if reader.total % TAR_BLOCK or reader.tail != bytes(2 * TAR_BLOCK):
            raise _truncated(archive, last_member, "no end-of-archive marker")
    if current is not None and (current.files or current.error):
        yield current


def _is_interruption(err: BaseException | None) -> bool:
    """True when ``err`` comes from a remote read that failed for good (not from bad bytes)."""
    from bigearthnet_txt.conversion.remote import RemoteReadError

    while err is not None:
        if isinstance(err, RemoteReadError):
            return True
        err = err.__cause__ or err.__context__
    return False


def _truncated(archive: Path, last_member: str, why) -> ImageryInputError:
    return ImageryInputError(
        f"{archive}: truncated or corrupt .tar.zst archive (after member {last_member}): {why}",
        kind="truncated-archive",
        path=str(archive),
    )


def iter_source(source: Path | str) -> Iterator[PatchFiles]:
    """Yield the patches of an archive or a folder, auto-detected."""
    return iter_archive(source) if is_archive(source) else iter_folder(source)
