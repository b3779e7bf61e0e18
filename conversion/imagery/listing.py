"""Patches of any source, and the bytes of a patch's band files.

``iter_patches(source)`` yields the ``PatchFiles`` of a ``.tar.zst`` archive (bytes, streamed), a
local folder (paths) or a folder behind an fsspec URL (``s3://bucket/BigEarthNet-S2``: URLs, as
``iter_folder`` groups local files). ``load_patch`` replaces the paths and URLs of one patch by the
files' bytes: the bytes that are decoded are the bytes that are hashed (``patch_digest``), whatever
the source.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bigearthnet_txt.conversion.imagery.errors import ImageryInputError
from bigearthnet_txt.conversion.imagery.sources import (
    PatchFiles,
    group_folder,
    is_archive,
    iter_archive,
    iter_folder,
)

if TYPE_CHECKING:  # fsspec and aiohttp are imported by the sources that need them only
    from bigearthnet_txt.conversion.remote import RemoteFile


def iter_remote_folder(folder: RemoteFile) -> Iterator[PatchFiles]:
    """The ``PatchFiles`` of the directories under ``folder`` (sorted by path), grouped as
    ``iter_folder`` groups them (``group_folder``)."""
    by_dir: dict[str, list[tuple[str, str, str]]] = {}
    for path in sorted(folder.fs.find(folder.path)):
        directory, filename = posixpath.split(path)
        url = folder.fs.unstrip_protocol(path)
        by_dir.setdefault(directory, []).append((filename, url, url))
    for directory, entries in by_dir.items():
        yield from group_folder(posixpath.basename(directory), entries)


def iter_patches(source: Path | RemoteFile) -> Iterator[PatchFiles]:
    """The patches of a source: an archive (local or URL), a local folder or a folder URL."""
    from bigearthnet_txt.conversion.remote import RemoteFile

    if is_archive(source):
        return iter_archive(source)
    return iter_remote_folder(source) if isinstance(source, RemoteFile) else iter_folder(source)


def _read(file: Path | str) -> bytes:
    if isinstance(file, Path):
        return file.read_bytes()
    import fsspec  # only folder URLs need it

    with fsspec.open(file, "rb") as fh:
        return fh.read()


def load_patch(patch: PatchFiles) -> PatchFiles:
    """``patch`` with every path or URL replaced by the file's bytes. A file that cannot be read
    makes the patch bad (``unreadable``, naming the file)."""
    if all(isinstance(f, bytes) for f in patch.files.values()):
        return patch
    files: dict[str, bytes] = {}
    error = patch.error
    for band, file in patch.files.items():
        try:
            files[band] = file if isinstance(file, bytes) else _read(file)
        except OSError as err:
            label = patch.labels.get(band, str(file))
            error = error or ImageryInputError(
                f"{label}: cannot read band file of patch {patch.name} ({err})",
                kind="unreadable",
                path=label,
                patch=patch.name,
            )
    return PatchFiles(patch.name, files, dict(patch.labels), error)
