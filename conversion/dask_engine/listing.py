"""Patch listings of folder sources, local or behind an fsspec URL (``s3://bucket/BigEarthNet-S2``).

A listing yields the same ``PatchFiles`` as ``bigearthnet_txt.conversion.imagery.sources.iter_folder``; for a URL
the band files are URLs (strings), read into bytes by ``load_patch`` on the worker that decodes them.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from pathlib import Path

from bigearthnet_txt.conversion.imagery.sources import PatchFiles, group_folder, iter_folder
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
    return PatchFiles(patch.name, files, dict(patch.labels), patch.error)
