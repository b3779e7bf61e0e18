"""Text tables and imagery store of a data set published on the Hub (``namespace/name``).

``hub_text(repo_id, config, splits, ...)`` reads the annotation tables with ``datasets``' own loader
of the repository (the card's YAML ``configs:``), ``hub_store(repo_id, revision, token)`` is the
:class:`~bigearthnet_txt.store.ImageryStore` of ``hf://datasets/<repo_id>@<revision>/imagery.zarr``.
Both honour ``HF_ENDPOINT`` (through ``huggingface_hub``), ``revision`` and ``token``;
``resolve_revision`` pins a branch or tag to its commit so that text and imagery come from the
same commit.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from urllib.parse import quote

from pathlib import Path

from bigearthnet_txt.errors import BigEarthNetTxtError, HubUnavailableError
from bigearthnet_txt.filters import RowFilter
from bigearthnet_txt.store import ImageryStore


def resolve_revision(
    repo_id: str, revision: str | None = None, token: str | bool | None = None
) -> str:
    """The commit sha of ``revision`` (default: the main branch) of data set repository
    ``repo_id``."""
    from huggingface_hub import HfApi

    try:
        return HfApi(token=token).dataset_info(repo_id, revision=revision).sha
    except hub_errors() as err:
        local = Path(repo_id).expanduser().resolve()
        raise HubUnavailableError(
            f"{repo_id!r} is neither a local folder ({local} does not exist) nor a reachable Hub "
            f"data set repository ({hub_reason(err)}); pass the path of a converted folder, or "
            "check the repository id, the revision, the network, HF_ENDPOINT and the token"
        ) from err


def hub_errors() -> tuple[type[BaseException], ...]:
    """What a failed Hub request raises: ``OSError`` (connection errors, ``huggingface_hub``'s own
    HTTP errors) and the errors of the HTTP library that ``huggingface_hub`` uses."""
    from huggingface_hub import errors

    http_error = getattr(errors, "HTTPError", None)
    return (OSError,) + ((http_error,) if isinstance(http_error, type) else ())


def hub_reason(err: BaseException) -> str:
    """A one-line reason for a failed Hub request: the repository or revision was not found, access
    was refused, or the connection failed (the first line of the error's message)."""
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(err, GatedRepoError):
        return "the repository is gated: accept its conditions and log in"
    if isinstance(err, RepositoryNotFoundError):
        return "no such repository, or it is private and the token cannot read it"
    if isinstance(err, RevisionNotFoundError):
        return "no such revision"
    first = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    return f"{type(err).__name__}: {first[:200]}"


def hub_url(repo_id: str, revision: str | None = None) -> str:
    """``hf://datasets/<repo_id>[@<revision>]``, the revision quoted as ``HfFileSystem`` expects."""
    return f"hf://datasets/{repo_id}" + (f"@{quote(revision, safe='')}" if revision else "")


@functools.lru_cache(maxsize=8)
def hub_store(
    repo_id: str, revision: str | None = None, token: str | bool | None = None
) -> ImageryStore:
    """The imagery store of the repository, read by byte ranges through ``HfFileSystem``.

    ``revision`` should be a commit sha (see ``resolve_revision``): there is one store per process
    and ``(repo_id, revision, token)``, so loads of several configs and splits
    at one commit share its metadata and shard indexes (a commit's files never change)."""
    return ImageryStore(
        hub_url(repo_id, revision), storage_options={"token": token} if token is not None else None
    )


def _empty(streaming: bool, split: str):
    from datasets import Dataset, Features

    from bigearthnet_txt.schema import TABLE_SCHEMA
    from bigearthnet_txt.streaming import iterable_dataset

    if streaming:
        return iterable_dataset([])
    return Dataset.from_dict(
        {c: [] for c in TABLE_SCHEMA.names},
        features=Features.from_arrow_schema(TABLE_SCHEMA),
        split=split,
    )


def hub_text(
    repo_id: str,
    config: str,
    splits: Sequence[str] | None,
    *,
    streaming: bool,
    revision: str,
    token: str | bool | None = None,
    rows: RowFilter | None = None,
    cache_dir: str | None = None,
) -> dict:
    """``{split: Dataset | IterableDataset}`` of the text rows of ``config`` in the repository.

    ``splits=None`` gives the splits the repository lists for the config; a requested split that it
    does not list (no rows) gives an empty dataset. ``rows`` is pushed down into the Parquet reads.
    A failed Hub request (after the revision resolved) raises ``HubUnavailableError`` with a
    one-line message; a streamed split fetches its files later, while it is iterated.
    """
    try:
        return _hub_text(repo_id, config, splits, streaming, revision, token, rows, cache_dir)
    except BigEarthNetTxtError:
        raise
    except hub_errors() as err:
        raise HubUnavailableError(
            f"{repo_id!r} at revision {revision}: reading the {config!r} tables from the Hub "
            f"failed ({hub_reason(err)}); check the network, HF_ENDPOINT and the token, and try "
            "again"
        ) from err


def _hub_text(
    repo_id: str,
    config: str,
    splits: Sequence[str] | None,
    streaming: bool,
    revision: str,
    token: str | bool | None,
    rows: RowFilter | None,
    cache_dir: str | None,
) -> dict:
    from datasets import load_dataset_builder

    kwargs = {"filters": rows.expression()} if rows else {}
    builder = load_dataset_builder(
        repo_id, config, revision=revision, token=token, cache_dir=cache_dir, **kwargs
    )
    listed = list(builder.config.data_files or {})
    wanted = list(splits) if splits is not None else listed
    present = [s for s in wanted if s in listed]
    if present and not streaming:
        builder.download_and_prepare()
    out = {}
    for split in wanted:
        if split not in present:
            out[split] = _empty(streaming, split)
        elif streaming:
            out[split] = builder.as_streaming_dataset(split=split)
        else:
            out[split] = builder.as_dataset(split=split)
    return out
