"""Publish a converted folder as a Hugging Face Hub data set repository.

``push(folder, repo_id)``:

1. (re)writes the card ``README.md`` for ``repo_id``
   (:func:`bigearthnet_txt.conversion.card.write_card`);
2. lists the files to publish (``PUBLISHED``: card, summaries, patch table, ``data/``,
   ``imagery.zarr/``; no hidden or ``*.tmp`` files) and checks them against
   the Hub's limits (:func:`check_limits`: < 100,000 files, < 10,000 entries per folder, < 50 GB
   per file) and the annotation Parquet against what the Hub's viewer reads
   (:func:`check_viewer_parquet`), failing with :class:`HubLimitError` before anything is sent;
3. ``create_repo(exist_ok=True)``, then lists the remote files and skips every local file whose
   size and hash already match (git blob sha1 for regular files, sha256 for LFS/Xet files; local
   hashes are cached in ``folder/.hub-push-cache.json``);
4. uploads the rest with ``upload_folder`` in batches of at most ``batch_files`` files, one
   folder unit at a time (``data/<task>``, ``imagery.zarr/<array>``, ...), annotation tables first,
   the store's root metadata and the card last;
5. deletes, just before the store's root metadata and the card go up, every remote file under a
   ``PUBLISHED`` name that the folder no longer has (:func:`stale_files`: shards of an earlier
   conversion with another ``--rows-per-shard`` or ``--shard-size``), so the card's globs match
   exactly the local tables. Files outside ``PUBLISHED`` (``.gitattributes``, ...) are left alone.

An upload error part-way raises :class:`PushInterrupted`; after any interruption (error, Ctrl-C,
killed process) running the same push again uploads only what the repository does not hold yet.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.parquet as pq

from bigearthnet_txt.errors import BigEarthNetTxtError, HubUnavailableError, InputError
from bigearthnet_txt.hub_loading import hub_errors, hub_reason
from bigearthnet_txt.schema import (
    ANNOTATION_SUMMARY,
    DATA_DIR,
    IMAGERY_STORE,
    PATCH_TABLE,
    STORE_ATTRS_KEY,
)

REPO_TYPE = "dataset"
MAX_REPO_FILES = 100_000
MAX_FOLDER_ENTRIES = 10_000
MAX_FILE_BYTES = 50 * 10**9
MAX_ROW_GROUP_BYTES = 300 * 2**20  # uncompressed bytes of one Parquet row group, for the viewer
DEFAULT_BATCH_FILES = 1_000
HASH_CACHE = ".hub-push-cache.json"
CARD_FILE = "README.md"
# What a converted folder publishes (files, or folders taken whole); anything else stays local.
PUBLISHED = (
    CARD_FILE,
    ANNOTATION_SUMMARY,
    PATCH_TABLE,
    "imagery_report.json",
    DATA_DIR,
    IMAGERY_STORE,
)


class HubLimitError(InputError):
    """The folder would break a Hub limit (or the viewer's Parquet expectations)."""


class PushInterrupted(BigEarthNetTxtError, RuntimeError):
    """The upload stopped part-way; rerunning the same push resumes it."""


@dataclass
class PushResult:
    repo_url: str
    uploaded: list[str] = field(default_factory=list)  # paths sent by this push
    skipped: list[str] = field(default_factory=list)  # paths the repository already held unchanged
    deleted: list[str] = field(default_factory=list)  # remote paths the folder no longer has
    batches: int = 0


# --- local files and limits --------------------------------------------------------------------


def publishable_files(folder: Path | str) -> list[str]:
    """Relative POSIX paths of the files to publish: the entries of ``PUBLISHED`` (folders
    recursively), without hidden entries and ``*.tmp`` files."""
    folder = Path(folder)
    out = []
    for top in PUBLISHED:
        if (folder / top).is_file():
            out.append(top)
        for root, dirs, files in os.walk(folder / top):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            rel_root = Path(root).relative_to(folder)
            out.extend(
                (rel_root / n).as_posix()
                for n in sorted(files)
                if not n.startswith(".") and not n.endswith(".tmp")
            )
    return out


def folder_entries(paths: Iterable[str]) -> Counter:
    """Direct entries (files and sub-folders) of every folder, ``""`` being the repository root."""
    children: dict[str, set[str]] = {}
    for path in paths:
        parts = PurePosixPath(path).parts
        for depth in range(len(parts)):
            parent = "/".join(parts[:depth])
            children.setdefault(parent, set()).add(parts[depth])
    return Counter({parent: len(names) for parent, names in children.items()})


def check_limits(
    folder: Path | str,
    paths: list[str],
    *,
    max_files: int | None = None,
    max_folder_entries: int | None = None,
    max_file_bytes: int | None = None,
) -> None:
    """Raise :class:`HubLimitError` naming the offending count, folder or file (limits default to
    ``MAX_REPO_FILES``, ``MAX_FOLDER_ENTRIES`` and ``MAX_FILE_BYTES``)."""
    folder = Path(folder)
    max_files = MAX_REPO_FILES if max_files is None else max_files
    max_folder_entries = MAX_FOLDER_ENTRIES if max_folder_entries is None else max_folder_entries
    max_file_bytes = MAX_FILE_BYTES if max_file_bytes is None else max_file_bytes
    problems = []
    n_store = sum(p.startswith(IMAGERY_STORE + "/") for p in paths)
    if len(paths) >= max_files:
        problems.append(
            f"{len(paths):,} files to publish (the Hub allows fewer than {max_files:,} per "
            f"repository; {n_store:,} of them are in {IMAGERY_STORE}: convert the imagery with a "
            "larger --shard-size, and the annotations with a larger --rows-per-shard)"
        )
    for parent, n in sorted(folder_entries(paths).items()):
        if n >= max_folder_entries:
            hint = (
                " (raise --shard-size of the imagery conversion)"
                if parent.startswith(IMAGERY_STORE)
                else ""
            )
            problems.append(
                f"folder {parent or '.'!r} holds {n:,} entries (the Hub allows fewer than "
                f"{max_folder_entries:,} per folder){hint}"
            )
    for path in paths:
        size = (folder / path).stat().st_size
        if size >= max_file_bytes:
            problems.append(
                f"{path} is {size / 1e9:.1f} GB (the Hub allows less than "
                f"{max_file_bytes / 1e9:.0f} GB per file)"
            )
    if problems:
        raise HubLimitError(f"{folder} cannot be pushed as is:\n  - " + "\n  - ".join(problems))


def check_complete(folder: Path | str) -> None:
    """Raise ``ValueError`` if the folder's imagery store or patch table is unfinished."""
    folder = Path(folder)
    meta = folder / IMAGERY_STORE / "zarr.json"
    if (folder / IMAGERY_STORE).exists():
        attrs = json.loads(meta.read_text()).get("attributes", {}) if meta.is_file() else {}
        if (
            not (attrs.get(STORE_ATTRS_KEY) or {}).get("complete")
            or not (folder / PATCH_TABLE).is_file()
        ):
            raise ValueError(
                f"{folder / IMAGERY_STORE}: imagery conversion not finished; rerun bigearthnet-txt "
                "convert before pushing"
            )


def _viewer_type_ok(t: pa.DataType) -> bool:
    """Types the Hub's viewer shows: plain scalars, strings and (fixed-size) lists of them."""
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        return _viewer_type_ok(t.value_type)
    if pa.types.is_struct(t):
        return all(_viewer_type_ok(f.type) for f in t)
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_string(t) or pa.types.is_timestamp(t))  # fmt: skip


def check_viewer_parquet(
    folder: Path | str, paths: list[str], max_row_group_bytes: int = MAX_ROW_GROUP_BYTES
) -> None:
    """Raise :class:`HubLimitError` if an annotation table uses a type or a row-group size that
    the Hub's viewer does not read."""
    folder = Path(folder)
    problems = []
    for path in paths:
        if not (path.startswith(DATA_DIR + "/") and path.endswith(".parquet")):
            continue
        meta = pq.ParquetFile(folder / path).metadata
        bad = [
            f"{f.name}: {f.type}"
            for f in meta.schema.to_arrow_schema()
            if not _viewer_type_ok(f.type)
        ]
        if bad:
            problems.append(f"{path}: column types the viewer cannot show ({', '.join(bad)})")
        biggest = max(
            (meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)), default=0
        )
        if biggest > max_row_group_bytes:
            problems.append(
                f"{path}: a row group of {biggest / 2**20:.0f} MiB (the viewer reads row groups "
                f"up to {max_row_group_bytes / 2**20:.0f} MiB; convert with smaller row groups)"
            )
    if problems:
        raise HubLimitError(
            "annotation tables not readable by the Hub viewer:\n  - " + "\n  - ".join(problems)
        )


# --- hashes and the remote state ---------------------------------------------------------------


def git_blob_sha1(path: Path) -> str:
    """The git object id of a file's content (the ``oid`` the Hub gives regular files)."""
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


class HashCache:
    """Hashes of local files keyed by (path, size, mtime),
    kept in ``folder/.hub-push-cache.json``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / HASH_CACHE
        try:
            self.entries: dict[str, dict] = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            self.entries = {}

    def get(self, rel: str, kind: str, compute: Callable[[Path], str]) -> str:
        stat = (self.folder / rel).stat()
        entry = self.entries.get(rel)
        if (
            not entry
            or entry.get("size") != stat.st_size
            or entry.get("mtime_ns") != stat.st_mtime_ns
        ):
            entry = self.entries[rel] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        if kind not in entry:
            entry[kind] = compute(self.folder / rel)
        return entry[kind]

    def save(self) -> None:
        tmp = self.path.with_name(HASH_CACHE + ".tmp")
        tmp.write_text(json.dumps(self.entries))
        tmp.replace(self.path)


def remote_files(api, repo_id: str) -> dict:
    """``{path: RepoFile}`` of the repository's ``main`` branch (empty for an empty repository)."""
    from huggingface_hub import RepoFile
    from huggingface_hub.errors import EntryNotFoundError

    try:
        entries = api.list_repo_tree(repo_id, repo_type=REPO_TYPE, recursive=True)
        return {e.path: e for e in entries if isinstance(e, RepoFile)}
    except EntryNotFoundError:
        return {}


def is_unchanged(folder: Path, rel: str, remote, cache: HashCache) -> bool:
    """Whether the remote file ``remote`` (a ``RepoFile`` or None) holds the local file's bytes."""
    if remote is None or remote.size != (folder / rel).stat().st_size:
        return False
    if remote.lfs is not None:
        return cache.get(rel, "sha256", sha256) == remote.lfs.sha256
    return cache.get(rel, "git_sha1", git_blob_sha1) == remote.blob_id


def is_published_path(path: str) -> bool:
    """Whether ``path`` is one of ``PUBLISHED`` or lies under one of its folders."""
    return any(path == top or path.startswith(top + "/") for top in PUBLISHED)


def stale_files(remote: Iterable[str], local: Iterable[str]) -> list[str]:
    """Remote paths under a ``PUBLISHED`` name that are not in ``local`` (sorted)."""
    keep = set(local)
    return sorted(p for p in remote if is_published_path(p) and p not in keep)


# --- batches -----------------------------------------------------------------------------------


def unit_of(path: str) -> str:
    """The folder a path is uploaded with: ``data/<task>``, ``imagery.zarr/<array>``, or ``""``
    (root files, and the store's root metadata)."""
    parts = PurePosixPath(path).parts
    return "/".join(parts[:2]) if len(parts) > 2 else ""


def _order(path: str) -> tuple:
    """Upload order: annotation tables, then imagery chunks, then metadata files, the card last."""
    if path == CARD_FILE:
        return (4, path)
    if path.startswith(DATA_DIR + "/"):
        return (0, path)
    if unit_of(path).startswith(IMAGERY_STORE + "/"):
        return (1, path)
    return (3 if path.startswith(IMAGERY_STORE + "/") else 2, path)


def _goes_last(path: str) -> bool:
    """The store's root metadata and the card: sent once everything else is in place."""
    return _order(path)[0] >= 3


def plan_batches(paths: Iterable[str], batch_files: int) -> list[tuple[str, list[str]]]:
    """``[(unit, [path, ...]), ...]``: consecutive paths of one unit, at most ``batch_files`` each;
    the paths that go last (:func:`_goes_last`) never share a batch with the others."""
    batches: list[tuple[str, list[str]]] = []
    previous = None
    for path in sorted(paths, key=_order):
        unit = unit_of(path)
        key = (unit, _goes_last(path))
        if key != previous or len(batches[-1][1]) >= batch_files:
            batches.append((unit, []))
        previous = key
        batches[-1][1].append(path)
    return batches


def _pattern(rel: str) -> str:
    """An ``allow_patterns`` entry matching exactly the path ``rel`` (glob characters escaped)."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in rel)


# --- push --------------------------------------------------------------------------------------


def push(
    folder: Path | str,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    batch_files: int = DEFAULT_BATCH_FILES,
    write_card: bool = True,
    log: Callable[[str], None] = print,
) -> PushResult:
    """Upload the converted ``folder`` to the data set repository ``repo_id`` (see the module
    docstring). Raises :class:`HubLimitError` before uploading anything when a limit is broken,
    :class:`PushInterrupted` when the upload stops part-way."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not (folder / DATA_DIR).is_dir():
        raise FileNotFoundError(
            f"{folder}: not a converted folder (no {DATA_DIR}/); run bigearthnet-txt convert first"
        )
    check_complete(folder)
    if write_card:
        from bigearthnet_txt.conversion.card import write_card as write

        write(folder, repo_id)
    elif not (folder / CARD_FILE).is_file():
        raise FileNotFoundError(
            f"{folder / CARD_FILE} missing (push without --keep-card writes it)"
        )
    paths = publishable_files(folder)
    check_limits(folder, paths)
    check_viewer_parquet(folder, paths)

    api = HfApi(endpoint=endpoint, token=token)
    try:
        repo_url = str(
            api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
        )
        remote = remote_files(api, repo_id)
    except hub_errors() as err:
        raise HubUnavailableError(
            f"push to {repo_id}: the Hub ({endpoint or 'HF_ENDPOINT or huggingface.co'}) cannot be "
            f"reached or refuses the repository ({hub_reason(err)}); check the network, --endpoint "
            "and the token (HF_TOKEN or `hf auth login`), then rerun"
        ) from err
    cache = HashCache(folder)
    try:
        pending = [p for p in paths if not is_unchanged(folder, p, remote.get(p), cache)]
    finally:
        cache.save()
    result = PushResult(repo_url, skipped=[p for p in paths if p not in set(pending)])
    stale = stale_files(remote, paths)
    batches = plan_batches(pending, batch_files)
    log(
        f"{repo_id}: {len(paths):,} files, {len(result.skipped):,} already there, "
        f"{len(pending):,} to upload in {len(batches)} batch(es), {len(stale):,} to delete"
    )
    for i, (unit, batch) in enumerate(batches, 1):
        if stale and _goes_last(batch[0]):
            _delete(api, repo_id, stale, batch_files, result, log)
            stale = []
        prefix = unit + "/" if unit else ""
        try:
            api.upload_folder(
                repo_id=repo_id,
                repo_type=REPO_TYPE,
                folder_path=folder / unit,
                path_in_repo=unit or None,
                allow_patterns=[_pattern(p[len(prefix) :]) for p in batch],
                commit_message=f"Upload {unit or 'metadata'} ({i}/{len(batches)})",
            )
        except Exception as err:
            raise PushInterrupted(
                f"push to {repo_id} stopped in batch {i}/{len(batches)} ({unit or 'root files'}) "
                f"after {len(result.uploaded):,} of {len(pending):,} files: {err}\n"
                "Rerun the same command to resume."
            ) from err
        result.uploaded.extend(batch)
        result.batches += 1
        log(f"  [{i}/{len(batches)}] {unit or 'root files'}: {len(batch):,} files")
    if stale:
        _delete(api, repo_id, stale, batch_files, result, log)
    return result


def _delete(api, repo_id: str, stale: list[str], batch_files: int, result: PushResult, log) -> None:
    """Delete the remote files ``stale`` in commits of at most ``batch_files`` files."""
    from huggingface_hub import CommitOperationDelete

    for start in range(0, len(stale), batch_files):
        chunk = stale[start : start + batch_files]
        try:
            api.create_commit(
                repo_id=repo_id, repo_type=REPO_TYPE,
                operations=[CommitOperationDelete(path_in_repo=p) for p in chunk],
                commit_message=f"Delete {len(chunk):,} files the converted folder no longer has",
            )  # fmt: skip
        except Exception as err:
            raise PushInterrupted(
                f"push to {repo_id} stopped while deleting stale files after "
                f"{len(result.deleted):,} of {len(stale):,}: {err}\n"
                "Rerun the same command to resume."
            ) from err
        result.deleted.extend(chunk)
        log(f"  deleted {len(chunk):,} stale files")
