"""Verified, resumable download of the BigEarthNet v2.0 files (Zenodo record 10891137) and of the
text release ``BigEarthNet.txt.parquet`` (Hugging Face Hub).

Every file has a name, a size and an md5 (``catalogue``, from
``bigearthnet_txt.conversion.imagery.checksums``; SPEC §2) and a list of URLs tried in order
(``resolve_sources``): files of a local folder (``--source-dir``), entries of a sources file
(``--sources``, JSON or TOML: ``{"<name>": {"url": …, "bytes": …, "md5": …}}``, ``url`` may be a
list), mirrors (``--mirror BASE``: ``BASE/<name>``); the official sources (Zenodo, and the Hub
through ``huggingface_hub.hf_hub_download`` for the text file) are used only when none of those
is given.

A file is written to ``<name>.part``; an interrupted download resumes with an HTTP range request
(the existing part is hashed first, so the md5 is computed over the whole file while it streams).
Only a verified file is renamed to ``<name>``, its ``<name>.md5`` sidecar (md5sum format) written
atomically just before; a file with that sidecar is not fetched or hashed again. A ``<name>``
without a readable sidecar (a run killed at the wrong moment) is hashed and kept when it matches,
moved to ``<name>.corrupt`` otherwise. A file whose md5 differs is moved to
``<name>.corrupt`` (kept for inspection, never resumed from) and ``ChecksumError`` names it with the
expected and actual sums. Before any transfer, the bytes still missing are compared with
``shutil.disk_usage`` of the target folder (``DiskSpaceError``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from bigearthnet_txt.conversion.imagery.checksums import (
    FILE_GROUPS,
    PUBLISHED_FILES,
    RELEASE_FILE,
    ChecksumError,
    hash_file,
    names_in,
)
from bigearthnet_txt.conversion.retry import retry_transient
from bigearthnet_txt.errors import BigEarthNetTxtError
from bigearthnet_txt.schema import RELEASE_FILENAME, RELEASE_REPO_ID

ZENODO_FILES_URL = "https://zenodo.org/records/10891137/files"
HUB_PREFIX = "hf://"
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
MD5_PATTERN = re.compile(r"[0-9a-f]{32}")
CHUNK = 1 << 20
TIMEOUT_S = 60

GROUPS: dict[str, tuple[str, ...]] = {group: names_in(group) for group in FILE_GROUPS.values()}


class DiskSpaceError(BigEarthNetTxtError, ValueError):
    """Not enough free space for the announced sizes."""


class DownloadError(BigEarthNetTxtError, ValueError):
    """No URL of a file could be fetched."""


@dataclass(frozen=True)
class SourceFile:
    """One file to fetch: ``urls`` are tried in order (``hf://`` = the Hub's release file)."""

    name: str
    bytes: int | None
    md5: str | None
    urls: tuple[str, ...] = field(default_factory=tuple)


def catalogue() -> dict[str, SourceFile]:
    """The published files with their official URLs, sizes and md5 sums."""
    files = {
        name: SourceFile(name, size, md5, (f"{ZENODO_FILES_URL}/{name}",))
        for name, (size, md5) in PUBLISHED_FILES.items()
    }
    files[RELEASE_FILENAME] = SourceFile(
        RELEASE_FILENAME,
        *RELEASE_FILE,
        (f"{HUB_PREFIX}datasets/{RELEASE_REPO_ID}/{RELEASE_FILENAME}",),
    )
    return files


def names_for(what: Iterable[str]) -> list[str]:
    """File names of the groups in ``what`` (``s2``, ``s1``, ``reference-maps``, ``metadata``,
    ``text``)."""
    names: list[str] = []
    for group in what:
        if group not in GROUPS:
            raise ValueError(f"unknown file group {group!r}; expected some of {', '.join(GROUPS)}")
        names.extend(n for n in GROUPS[group] if n not in names)
    return names


def read_sources_file(path: Path | str) -> dict[str, dict]:
    """``{name: {"url": str | list, "bytes": int, "md5": str}}`` from a JSON or TOML file."""
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() == ".toml":
        import tomllib

        data = tomllib.loads(text)
    else:
        data = json.loads(text)
    data = data.get("files", data)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path}: expected a table of file name -> {{url, bytes, md5}}")
    return data


def resolve_sources(
    names: Sequence[str],
    *,
    mirrors: Sequence[str] = (),
    source_dir: Path | str | None = None,
    sources_file: Path | str | None = None,
) -> list[SourceFile]:
    """The files ``names`` with their URLs in trial order (see the module docstring)."""
    known = catalogue()
    overrides = read_sources_file(sources_file) if sources_file else {}
    custom = bool(mirrors or source_dir or sources_file)
    result = []
    for name in names:
        base = known.get(name, SourceFile(name, None, None))
        entry = overrides.get(name, {})
        size = entry.get("bytes", base.bytes)
        md5 = entry.get("md5", base.md5)
        urls: list[str] = []
        if source_dir is not None and (Path(source_dir) / name).is_file():
            urls.append((Path(source_dir) / name).resolve().as_uri())
        entry_urls = entry.get("url", entry.get("urls", []))
        urls.extend([entry_urls] if isinstance(entry_urls, str) else entry_urls)
        urls.extend(f"{m.rstrip('/')}/{name}" for m in mirrors)
        if not custom:
            urls.extend(base.urls)
        if not urls:
            raise ValueError(
                f"{name}: no source (not in the source folder, the sources file or a mirror)"
            )
        result.append(SourceFile(name, int(size) if size is not None else None, md5, tuple(urls)))
    return result


def verified_marker(target: Path) -> Path:
    return target.with_name(target.name + ".md5")


def recorded_md5(target: Path) -> str | None:
    """The md5 in ``target``'s sidecar, or None when it is missing or garbled."""
    try:
        fields = verified_marker(target).read_text().split()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return fields[0] if fields and MD5_PATTERN.fullmatch(fields[0]) else None


def write_marker(target: Path, md5: str) -> None:
    """Write ``target``'s sidecar atomically: a partial write never takes its place."""
    marker = verified_marker(target)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(f"{md5}  {target.name}\n")
    os.replace(tmp, marker)


def is_verified(source: SourceFile, target: Path) -> bool:
    """True when ``target`` was downloaded and verified before (its ``.md5`` sidecar matches)."""
    recorded = recorded_md5(target)
    if recorded is None or not target.is_file():
        return False
    size_ok = source.bytes is None or target.stat().st_size == source.bytes
    return size_ok and (source.md5 is None or recorded == source.md5)


def adopt_existing(source: SourceFile, target: Path, progress: bool = False) -> bool:
    """Whether ``target`` holds ``source``: verified before, or present without a readable sidecar
    and matching the known size and md5 (then the sidecar is written). A ``target`` that does not
    match is moved to ``<name>.corrupt``, so that only a fresh download takes its name."""
    if is_verified(source, target):
        return True
    if not target.is_file():
        return False
    if source.md5 is not None and (source.bytes is None or target.stat().st_size == source.bytes):
        digest = hashlib.md5()
        hash_file(target, progress, digest)
        if digest.hexdigest() == source.md5:
            write_marker(target, source.md5)
            return True
    _quarantine(target)
    verified_marker(target).unlink(missing_ok=True)
    return False


def check_disk_space(sources: Sequence[SourceFile], folder: Path) -> int:
    """Raise ``DiskSpaceError`` when the bytes still to fetch exceed the free space; return them."""
    needed = 0
    for source in sources:
        target = folder / source.name
        if is_verified(source, target) or source.bytes is None:
            continue
        part = target.with_name(target.name + ".part")
        needed += source.bytes - (part.stat().st_size if part.is_file() else 0)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DiskSpaceError(
            f"{folder}: {needed / 1e9:.2f} GB still to download but only {free / 1e9:.2f} GB free; "
            "free space or choose another folder (or stream the archives: prepare --stream)"
        )
    return needed


def _open_range(url: str, offset: int):
    """``(chunks, restart)``: an iterator of bytes from ``offset`` and whether the source ignored
    the range (``restart``: it sends the whole file)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return _file_chunks(Path(unquote(parsed.path)), offset), False
    if parsed.scheme not in ("http", "https"):
        raise DownloadError(f"{url}: unsupported scheme for download (http, https, file, hf)")
    import requests

    headers = {"Range": f"bytes={offset}-"} if offset else {}
    response = requests.get(url, headers=headers, stream=True, timeout=TIMEOUT_S)
    if offset and response.status_code == 416:
        response.close()
        return iter(()), False
    if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
        response.close()
        raise DownloadError(f"{url}: HTTP {response.status_code} {response.reason}")
    response.raise_for_status()
    restart = bool(offset) and response.status_code != 206
    return _response_chunks(response), restart


def _response_chunks(response):
    """Chunks as they arrive (``read1``), so bytes received before a drop are kept."""
    with response:
        while block := response.raw.read1(CHUNK, decode_content=True):
            yield block


def _file_chunks(path: Path, offset: int):
    with open(path, "rb") as fh:
        fh.seek(offset)
        while block := fh.read(CHUNK):
            yield block


def _transfer(source: SourceFile, url: str, part: Path, digest, bar):
    """Append ``url`` to ``part`` from its current size, resuming with range requests after a
    transient failure (``retry.retry_transient``); returns the md5 object over the whole part (a
    new one when the source ignored the range). A source sending more than the declared
    ``source.bytes`` is stopped at that size (``DownloadError``, not retried): a server streaming
    without end never fills the disk."""
    state = {"digest": digest}

    def attempt():
        offset = part.stat().st_size if part.is_file() else 0
        chunks, restart = _open_range(url, offset)
        if restart:
            state["digest"] = hashlib.md5()
            bar.reset()
        written = 0 if restart else offset
        with open(part, "wb" if restart else "ab") as out:
            for chunk in chunks:
                if source.bytes is not None and written + len(chunk) > source.bytes:
                    chunk = chunk[: source.bytes - written]
                    out.write(chunk)
                    state["digest"].update(chunk)
                    raise DownloadError(
                        f"{source.name}: {url} sends more than the declared {source.bytes:,} "
                        "bytes; stopped at that size (check the URL, or the size in --sources)"
                    )
                out.write(chunk)
                state["digest"].update(chunk)
                bar.update(len(chunk))
                written += len(chunk)
        size = part.stat().st_size
        if source.bytes is not None and size < source.bytes:
            raise ConnectionError(f"connection closed at byte {size} of {source.bytes}")
        return state["digest"]

    def give_up(err: BaseException, retries: int) -> DownloadError:
        return DownloadError(f"{source.name}: {url} failed {retries + 1} times ({err})")

    try:
        return retry_transient(attempt, give_up=give_up)
    except OSError as err:  # not worth a retry (e.g. a file:// URL that does not exist)
        raise DownloadError(f"{source.name}: {url}: {err}") from err


def _finish(source: SourceFile, part: Path, target: Path, got: str) -> None:
    size = part.stat().st_size
    if source.bytes is not None and size != source.bytes:
        bad = _quarantine(part)
        raise DownloadError(f"{source.name}: {size} bytes, expected {source.bytes}; moved to {bad}")
    if source.md5 is not None and got != source.md5:
        bad = _quarantine(part)
        raise ChecksumError(source.name, source.md5, got, f"file kept as {bad}")
    write_marker(target, got)
    os.replace(part, target)


def _quarantine(path: Path) -> Path:
    """Move ``<name>.part`` (or ``<name>``) to ``<name>.corrupt``."""
    bad = path.with_name(path.name.removesuffix(".part") + ".corrupt")
    os.replace(path, bad)
    return bad


def hub_sha256(repo_id: str, filename: str) -> str | None:
    """The Hub's own sha256 of a dataset file (the ETag of an LFS file), if it announces one."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    etag = (
        get_hf_file_metadata(hf_hub_url(repo_id, filename, repo_type="dataset")).etag or ""
    ).strip('"')
    return etag if SHA256_PATTERN.fullmatch(etag) else None


def _fetch_from_hub(source: SourceFile, url: str, folder: Path, progress: bool) -> None:
    """Fetch through ``hf_hub_download`` (its own resume) and verify against the Hub's sha256 when
    it has one (then the known size and md5 are not used), else against the known md5."""
    from huggingface_hub import hf_hub_download

    repo_id, filename = url.removeprefix(HUB_PREFIX).removeprefix("datasets/").rsplit("/", 1)
    expected_sha256 = hub_sha256(repo_id, filename)
    path = Path(hf_hub_download(repo_id, filename, repo_type="dataset", local_dir=folder / ".hub"))
    part = folder / (source.name + ".part")
    os.replace(path, part)
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    hash_file(part, progress, md5, sha256)
    if expected_sha256 is not None:
        if sha256.hexdigest() != expected_sha256:
            bad = _quarantine(part)
            raise ChecksumError(
                source.name, expected_sha256, sha256.hexdigest(), f"file kept as {bad}", "sha256"
            )
        source = SourceFile(source.name, None, None, source.urls)
    _finish(source, part, folder / source.name, md5.hexdigest())


def fetch(source: SourceFile, folder: Path | str, progress: bool = True) -> Path:
    """Download one file into ``folder`` (resuming ``<name>.part``), verify it
    and return its path."""
    from tqdm.auto import tqdm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    if adopt_existing(source, target, progress):
        return target
    part = folder / (source.name + ".part")
    if source.bytes is not None and part.is_file() and part.stat().st_size > source.bytes:
        part.unlink()
    errors = []
    for url in source.urls:
        if url.startswith(HUB_PREFIX):
            try:
                _fetch_from_hub(source, url, folder, progress)
                return target
            except (ChecksumError, DownloadError):
                raise
            except Exception as err:  # noqa: BLE001 - Hub or network failure: try the next source
                errors.append(f"{url}: {err}")
                continue
        digest = hashlib.md5()
        if part.is_file():
            hash_file(part, progress, digest)
        offset = part.stat().st_size if part.is_file() else 0
        with tqdm(total=source.bytes, initial=offset, unit="B", unit_scale=True, desc=source.name,
                  disable=not progress) as bar:  # fmt: skip
            try:
                digest = _transfer(source, url, part, digest, bar)
            except DownloadError as err:
                errors.append(str(err))
                continue
        _finish(source, part, target, digest.hexdigest())
        return target
    raise DownloadError(f"{source.name}: no source could be fetched:\n  " + "\n  ".join(errors))


def download(
    what: Iterable[str],
    to: Path | str,
    *,
    mirrors: Sequence[str] = (),
    source_dir: Path | str | None = None,
    sources_file: Path | str | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Fetch and verify the files of the groups ``what`` into ``to``; ``{name: path}``."""
    folder = Path(to)
    folder.mkdir(parents=True, exist_ok=True)
    sources = resolve_sources(
        names_for(what), mirrors=mirrors, source_dir=source_dir, sources_file=sources_file
    )
    for source in sources:
        adopt_existing(source, folder / source.name, progress)
    check_disk_space(sources, folder)
    return {s.name: fetch(s, folder, progress) for s in sources}
