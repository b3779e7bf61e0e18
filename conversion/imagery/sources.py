"""Band-file sources: folders (v2, pre-release flat ``.tiff``, v1.0) and streamed ``.tar.zst`` archives.

Every source yields ``PatchFiles``: the name of one patch (the folder holding its band files: a v2
``patch_id``/``s1_name``, or a v1.0 name) and ``{band: path or bytes}`` for its GeoTIFFs. Band keys
are ``B01`` … ``B12``/``B8A``, ``VV``/``VH`` or ``reference_map``; other files (e.g. v1.0
``_labels_metadata.json``) are ignored.

Archives are read as one stream (``zstandard`` + ``tarfile`` mode ``'r|'``): no extraction, at
most one patch's files in memory. Members are expected grouped by patch folder (the official
archives are sorted); a truncated archive, a member path escaping the archive (``../``, absolute)
or a damaged stream raises ``ImageryInputError`` naming the archive and member.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import zstandard

from bigearthnet_txt.schema import S1_BANDS, S2_BANDS
from conversion.imagery.errors import ImageryInputError
from conversion.remote import as_source, is_url

REFERENCE_MAP_BAND = "reference_map"
BAND_SUFFIXES: tuple[str, ...] = (REFERENCE_MAP_BAND, *S2_BANDS, *S1_BANDS)
TIFF_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff")
TAR_BLOCK = 512


@dataclass
class PatchFiles:
    """The band files of one patch: ``files[band]`` is a ``Path`` (folders) or ``bytes`` (archives);
    ``labels[band]`` names the file in messages (``archive.tar.zst:member`` for archives)."""

    name: str
    files: dict[str, Path | bytes] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def split_band_filename(filename: str) -> tuple[str, str] | None:
    """``"<name>_<band>.tif[f]"`` -> ``(name, band)``; ``None`` for any other file."""
    stem, ext = os.path.splitext(filename)
    if ext.lower() not in TIFF_EXTENSIONS:
        return None
    for band in BAND_SUFFIXES:
        if stem.endswith("_" + band):
            return stem[: -len(band) - 1], band
    return None


def is_archive(path: Path | str) -> bool:
    """True for a ``.tar.zst`` / ``.tzst`` file."""
    name = str(path).lower()
    return name.endswith((".tar.zst", ".tzst")) and (is_url(path) or Path(path).is_file())


def iter_folder(root: Path | str) -> Iterator[PatchFiles]:
    """Walk ``root`` (sorted) and yield one ``PatchFiles`` per folder holding band GeoTIFFs.

    Works for the v2 layout (``<product>/<patch>/``), the flat pre-release and v1.0 layouts
    (``<patch>/``) and a single patch folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: imagery folder not found")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        patch = PatchFiles(Path(dirpath).name)
        for filename in sorted(filenames):
            parsed = split_band_filename(filename)
            if parsed is None:
                continue
            path = Path(dirpath) / filename
            patch.files[parsed[1]] = path
            patch.labels[parsed[1]] = str(path)
        if patch.files:
            yield patch


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


def _check_member_name(archive: Path, name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name.startswith(("/", "\\")):
        raise ImageryInputError(
            f"{archive}: unsafe member path {name!r} (absolute or containing '..'); refusing to read it",
            kind="unsafe-member",
            path=f"{archive}:{name}",
        )
    return path


def iter_archive(archive: Path | str) -> Iterator[PatchFiles]:
    """Stream a ``.tar.zst`` archive and yield one ``PatchFiles`` per patch folder, in archive order."""
    archive = as_source(archive)
    current: PatchFiles | None = None
    current_dir: PurePosixPath | None = None
    last_member = "(start of archive)"
    with archive.open("rb") as fh:
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
                        if current is not None and current.files:
                            yield current
                        current, current_dir = PatchFiles(path.parent.name), path.parent
                    data = tar.extractfile(member).read()
                    if len(data) != member.size:
                        raise tarfile.ReadError("unexpected end of data")
                    current.files[parsed[1]] = data
                    current.labels[parsed[1]] = f"{archive}:{member.name}"
            reader.drain()
        except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as err:
            raise _truncated(archive, last_member, err) from err
        if reader.total % TAR_BLOCK or reader.tail != bytes(2 * TAR_BLOCK):
            raise _truncated(archive, last_member, "no end-of-archive marker")
    if current is not None and current.files:
        yield current


def _truncated(archive: Path, last_member: str, why) -> ImageryInputError:
    return ImageryInputError(
        f"{archive}: truncated or corrupt .tar.zst archive (after member {last_member}): {why}",
        kind="truncated-archive",
        path=str(archive),
    )


def iter_source(source: Path | str) -> Iterator[PatchFiles]:
    """Yield the patches of an archive or a folder, auto-detected."""
    return iter_archive(source) if is_archive(source) else iter_folder(source)
