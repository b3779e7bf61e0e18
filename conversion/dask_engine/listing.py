"""Patch listings of folder sources, local or behind an fsspec URL (``s3://bucket/BigEarthNet-S2``).

A listing yields the same ``PatchFiles`` as ``conversion.imagery.sources.iter_folder``; for a URL
the band files are URLs (strings), read into bytes by ``load_patch`` on the worker that decodes them.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from pathlib import Path

from conversion.imagery.sources import PatchFiles, iter_folder, split_band_filename
from conversion.remote import RemoteFile


def iter_remote_folder(folder: RemoteFile) -> Iterator[PatchFiles]:
    """One ``PatchFiles`` per directory holding band GeoTIFFs under ``folder`` (sorted by path)."""
    by_dir: dict[str, PatchFiles] = {}
    for path in sorted(folder.fs.find(folder.path)):
        directory, filename = posixpath.split(path)
        parsed = split_band_filename(filename)
        if parsed is None:
            continue
        patch = by_dir.setdefault(directory, PatchFiles(posixpath.basename(directory)))
        url = folder.fs.unstrip_protocol(path)
        patch.files[parsed[1]] = url
        patch.labels[parsed[1]] = url
    yield from by_dir.values()


def iter_folder_source(source: Path | RemoteFile) -> Iterator[PatchFiles]:
    """The patches of a folder source: a local folder or an fsspec directory URL."""
    return iter_remote_folder(source) if isinstance(source, RemoteFile) else iter_folder(source)


def load_patch(patch: PatchFiles) -> PatchFiles:
    """``patch`` with every URL replaced by the file's bytes (paths and bytes are kept)."""
    if not any(isinstance(f, str) for f in patch.files.values()):
        return patch
    import fsspec

    files: dict[str, Path | bytes] = {}
    for band, file in patch.files.items():
        if isinstance(file, str):
            with fsspec.open(file, "rb") as fh:
                file = fh.read()
        files[band] = file
    return PatchFiles(patch.name, files, dict(patch.labels))
