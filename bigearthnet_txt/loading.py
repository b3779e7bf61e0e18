"""``load_dataset``: a converted BigEarthNet.txt folder as ``datasets`` objects, imagery joined.

Usage (``DIR`` = the folder written by ``bigearthnet-txt convert``, named ``bigearthnet_txt``)::

    from bigearthnet_txt import LoadConfig, load_dataset

    ds = load_dataset("bigearthnet_txt", "vqa", split="train")      # JoinedDataset (map-style)
    ds[0]["input"], ds[0]["answer_index"], ds[0]["s2_10m"].dtype      # str, int | None, uint16
    ds[0]["has_s1"]                                                    # False: s1 is all NaN
    ds = load_dataset("path/to/bigearthnet_txt", "referring", split="test", resolution=120)
    ds[0]["s2"].shape                                                  # (12, 120, 120) uint16

    it = load_dataset("bigearthnet_txt", "all", split="train", streaming=True,
                      shuffle_seed=0, buffer_size=1000, rank=rank, world_size=world_size)
    for example in it: ...                                             # datasets.IterableDataset
    state = it.state_dict(); ...; it.load_state_dict(state)            # resume
    cfg = LoadConfig("vqa", streaming=True, shuffle_seed=0)           # the same options, as one
    it = load_dataset("bigearthnet_txt", cfg, split="train")           # object (ParquetConfig-like)

The options are the fields of :class:`bigearthnet_txt.load_config.LoadConfig`, given as keyword
arguments or as one ``LoadConfig`` in place of the config name.

``path`` is resolved by :func:`bigearthnet_txt.paths.resolve`: a converted folder (relative or
absolute); a bare name such as ``"bigearthnet_txt"``, looked up in ``$BIGEARTHNET_TXT_HOME``
(default ``~/.cache/bigearthnet_txt``, where ``bigearthnet-txt demo`` / ``prepare`` write); or a
Hub repository id ``"namespace/name"``::

    ds = load_dataset("ns/bigearthnet_txt", "vqa", split="train", streaming=True)  # revision, token

A Hub repository's text tables are read by ``datasets``' loader of that repository (its card's YAML
``configs:``, at the commit ``revision`` points to), its imagery by byte ranges from
``hf://datasets/<repo_id>@<commit>/imagery.zarr`` (``HF_ENDPOINT`` is honoured).
``split=None`` returns a ``DatasetDict`` / ``IterableDatasetDict`` of the splits that have rows.
Every example holds the ``TABLE_SCHEMA`` columns (13 release columns, ``patch_index`` and the
parsed answers) plus the imagery of :mod:`bigearthnet_txt.imagery_join` (``imagery=()`` for text
only), with ``has_s1`` (and ``has_reference_map`` when asked) saying whether the patch has one.
Arrays keep their stored dtypes: uint16 S2 / reference maps, float32 S1.

Map-style: the text tables are read by ``datasets``' Parquet builder (Arrow cache, ``filters``
pushed down) and the imagery is joined by ``Dataset.with_transform``; the result is a
:class:`bigearthnet_txt.joined_dataset.JoinedDataset`, a ``datasets.Dataset`` whose ``ds[i]`` and
``ds[[i, j, ...]]`` build the rows asked for straight from the Arrow buffers, with one batched
store read per call (the same values as ``datasets``' own path, at the lean reader's speed).

Streaming: see :mod:`bigearthnet_txt.streaming`; each patch is decoded once into its own read-only
arrays, which the rows of that patch share. The imagery is joined where the rows are read, in file
order (``batch_size`` rows per store read), before any shuffle buffer: a buffered row holds its
patch (about 0.28 MB at native resolution: up to 280 MB for the default ``buffer_size`` of 1000
rows). With fewer than two rows per patch (one text per patch, as in ``captions``) each row gets
its patch as it is handed out instead: in file order as the rows are read (``streaming.join_each``)
and, with ``shuffle_seed``, as the row leaves the buffer, which then holds text only
(``streaming.ShuffleJoin``; a patch decoded for one row is kept while more of its rows are
buffered); these decode one patch at a time, without ``decode_threads``. A
``datasets.IterableDataset`` from elsewhere gets its imagery from :func:`with_imagery`, a batched
``IterableDataset.map``. The buffer is fed from one piece at a time
(``max_buffer_input_shards=1``): interleaving pieces in ``datasets`` hands every row over between
threads, which cost more than the rest of a text row.
The result is a :class:`bigearthnet_txt.streamed_dataset.StreamedDataset`: its
``shuffle(seed, buffer_size=...)`` (``datasets``' idiom) is ``shuffle_seed=seed`` (with
``datasets``' own shuffle the buffer would hold decoded rows).
``state_dict()`` resumes exactly without ``shuffle_seed``; with it, ``datasets`` restores the
piece position but the rows that sat in the shuffle buffer are lost on resume (the buffer is
refilled from new rows).

Plain ``datasets.load_dataset(DIR, "vqa")`` (the card's YAML ``configs:``) also works and gives the
text columns with ``patch_index``; :func:`with_imagery` adds the imagery to such a dataset.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bigearthnet_txt.configs import config_files, config_tables, present_splits
from bigearthnet_txt.filters import row_filter as make_row_filter
from bigearthnet_txt.imagery_join import ImageryJoin
from bigearthnet_txt.load_config import STREAM_BATCH_SIZE, LoadConfig
from bigearthnet_txt.paths import resolve
from bigearthnet_txt.schema import SPLITS, TABLE_SCHEMA
from bigearthnet_txt.store import ImageryStore
from bigearthnet_txt.streaming import iterable_dataset, plan_pieces, split_pieces

# Rows per record batch of the Arrow cache ``datasets`` writes: one batch per Parquet row group
# instead of ``datasets``' 1,000 rows, so a random ``ds[i]`` looks its row up among a few large
# batches (with 1,000-row batches, ``ds[i]`` on ``all`` ran about 10 µs slower).
CACHE_BATCH_ROWS = 1 << 16


def table_features():
    """``datasets.Features`` of the annotation tables (``TABLE_SCHEMA``)."""
    from datasets import Features

    return Features.from_arrow_schema(TABLE_SCHEMA)


def with_imagery(
    dataset,
    store: ImageryStore | str | Path,
    imagery: Sequence[str] = ("s2", "s1"),
    resolution: str | int = "native",
    batch_size: int = STREAM_BATCH_SIZE,
):
    """``dataset`` (``Dataset`` or ``IterableDataset`` with ``patch_index``), imagery joined.

    ``store`` is a converted folder or any picklable object with ``ImageryStore.read``'s signature
    (e.g. a reader of a remote store).

    A ``Dataset`` gets ``with_transform`` (lazy, per accessed rows) and becomes a
    :class:`bigearthnet_txt.joined_dataset.JoinedDataset` (fast ``ds[i]``); an ``IterableDataset``
    gets a batched ``map`` (``batch_size`` rows per store read).
    """
    from datasets import IterableDataset

    from bigearthnet_txt.joined_dataset import JoinedDataset  # imports datasets

    store = store if hasattr(store, "read") else ImageryStore.open(store)
    if isinstance(dataset, IterableDataset):
        join = ImageryJoin(store, imagery, resolution, share_rows=True)
        return dataset.map(join, batched=True, batch_size=batch_size)
    return JoinedDataset.of(dataset.with_transform(ImageryJoin(store, imagery, resolution)))


def _split_names(root: Path, config: str, split: str | None) -> list[str]:
    if split is not None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return [split]
    present = present_splits(root)
    return [s for s in SPLITS if any(s in present[t] for t in config_tables(config))]


def _map_style(root: Path, config: str, split: str, rows, cache_dir):
    from datasets import Dataset
    from datasets import load_dataset as hf_load_dataset

    files = config_files(root, config, split)
    if not files or (rows and not plan_pieces([str(f) for f in files], rows)):
        return Dataset.from_dict(
            {c: [] for c in TABLE_SCHEMA.names}, features=table_features(), split=split
        )
    kwargs = {"filters": rows.expression()} if rows else {}
    return hf_load_dataset(
        "parquet", data_files={split: [str(f) for f in files]}, split=split,
        features=table_features(), cache_dir=cache_dir, writer_batch_size=CACHE_BATCH_ROWS,
        **kwargs,
    )  # fmt: skip


def _streaming(root: Path, config: str, split: str, rows, rank, world_size, drop_remainder,
               shuffle_seed, buffer_size, join, batch_size):  # fmt: skip
    pieces = plan_pieces([str(f) for f in config_files(root, config, split)], rows)
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(pieces))
        pieces = [pieces[i] for i in order]  # the same order on every rank before splitting
    if world_size > 1:
        pieces = split_pieces(pieces, rank, world_size, drop_remainder)
    shuffle = (shuffle_seed, buffer_size) if shuffle_seed is not None else None
    return iterable_dataset(pieces, rows, join, batch_size, shuffle)


def load_dataset(
    path: str | Path, config: str | LoadConfig = "all", split: str | None = None, **options
):
    """Load config ``config`` of ``path``: a converted folder, a bare name in the data home or a Hub
    repository id (see the module docstring).

    ``config`` is a config name or a :class:`bigearthnet_txt.load_config.LoadConfig`; ``options``
    are its fields as keyword arguments (``streaming``, ``imagery``, ``resolution``, the filters
    ``countries``/``seasons``/``climate_zones``/``categories``/``types``, ``rank``, ``world_size``,
    ``drop_remainder``, ``shuffle_seed``, ``buffer_size``, ``batch_size``, ``decode_threads``,
    ``cache_dir``, ``revision``, ``token``), overriding those of a given ``LoadConfig``.

    Returns a :class:`bigearthnet_txt.joined_dataset.JoinedDataset` (a ``datasets.Dataset``;
    ``streaming=False``) or a :class:`bigearthnet_txt.streamed_dataset.StreamedDataset` (a
    ``datasets.IterableDataset`` whose ``shuffle`` is ``shuffle_seed``), or their ``...Dict`` when
    ``split`` is None. Filters keep rows whose column is in the given values. Streaming only:
    ``rank``/``world_size`` give this node its equal share of rows (lengths differ by at most one;
    ``drop_remainder`` makes them identical), ``shuffle_seed`` shuffles pieces (same order on
    every rank) and rows in a buffer of ``buffer_size``, ``batch_size`` rows share one imagery
    read. Map-style datasets are split with ``datasets.distributed.split_dataset_by_node``.
    A streamed Hub repository is split row by row: rank ``r`` keeps rows ``r, r + world_size, ...``
    (every rank reads the text of all rows, and the imagery of its own; no ``drop_remainder``).
    """
    from datasets import DatasetDict, IterableDatasetDict

    from bigearthnet_txt.streamed_dataset import StreamedDataset  # imports datasets

    cfg = LoadConfig.of(config, **options)
    rows = make_row_filter(**cfg.filters())
    target = resolve(path)
    if isinstance(target, str):
        arguments = {
            k: v for k, v in asdict(cfg).items() if k not in ("name", "rank", "world_size")
        }
        return _load_hub(target, cfg.name, split, rows, arguments, cfg.rank, cfg.world_size)
    root = target
    store = ImageryStore.open(root, decode_threads=cfg.decode_threads) if cfg.imagery else None
    result = {}
    for name in _split_names(root, cfg.name, split):
        if cfg.streaming:
            join = ImageryJoin(store, cfg.imagery, cfg.resolution) if store else None
            ds = _streaming(root, cfg.name, name, rows, cfg.rank, cfg.world_size,
                            cfg.drop_remainder, cfg.shuffle_seed, cfg.buffer_size, join,
                            cfg.batch_size)  # fmt: skip
        else:
            ds = _map_style(root, cfg.name, name, rows, cfg.cache_dir)
            ds = with_imagery(ds, store, cfg.imagery, cfg.resolution) if store else ds
        if cfg.streaming:
            ds = StreamedDataset.of(ds, functools.partial(load_dataset, path, cfg, name))
        result[name] = ds
    if split is not None:
        return result[split]
    return IterableDatasetDict(result) if cfg.streaming else DatasetDict(result)


class _RowShare:
    """``filter`` predicate keeping rows ``rank``, ``rank + world_size``, ... of the iteration order
    (the same on every rank): shares are disjoint, cover every row and differ by at most one row."""

    def __init__(self, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.rank, self.world_size = rank, world_size

    def __call__(self, example: dict, index: int) -> bool:
        return index % self.world_size == self.rank


def _load_hub(
    repo_id: str, config: str, split: str | None, rows, arguments: dict, rank: int, world_size: int
):
    """``load_dataset`` of Hub repository ``repo_id`` (text by ``datasets``, imagery by ranges)."""
    from datasets import DatasetDict, IterableDatasetDict

    from bigearthnet_txt.hub_loading import hub_store, hub_text, resolve_revision
    from bigearthnet_txt.streamed_dataset import StreamedDataset

    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    streaming, token = arguments["streaming"], arguments["token"]
    if streaming and arguments["drop_remainder"]:
        raise ValueError("drop_remainder is not supported for a Hub repository")
    commit = resolve_revision(repo_id, arguments["revision"], token)
    texts = hub_text(repo_id, config, None if split is None else [split], streaming=streaming,
                     revision=commit, token=token, rows=rows,
                     cache_dir=arguments["cache_dir"])  # fmt: skip
    store = hub_store(repo_id, commit, token) if arguments["imagery"] else None
    result = {}
    for name, ds in texts.items():
        if streaming:
            if arguments["shuffle_seed"] is not None:
                ds = ds.shuffle(
                    seed=arguments["shuffle_seed"], buffer_size=arguments["buffer_size"]
                )
            if world_size > 1:
                ds = ds.filter(_RowShare(rank, world_size), with_indices=True)
        if store is not None:
            ds = with_imagery(
                ds, store, arguments["imagery"], arguments["resolution"], arguments["batch_size"]
            )
        if streaming:
            reload = functools.partial(load_dataset, repo_id, config, name,
                                       **dict(arguments, revision=commit), rank=rank,
                                       world_size=world_size)  # fmt: skip
            ds = StreamedDataset.of(ds, reload)
        result[name] = ds
    if split is not None:
        return result[split]
    return IterableDatasetDict(result) if streaming else DatasetDict(result)


def split_by_node(dataset, rank: int, world_size: int, drop_remainder: bool = False):
    """The share of node ``rank`` of ``world_size``: every row once, lengths differing by <= 1.

    A ``Dataset`` is split into contiguous chunks by ``datasets.distributed.split_dataset_by_node``
    (``drop_remainder`` is not supported there). An ``IterableDataset`` returned by
    ``load_dataset(..., streaming=True)`` is reloaded with ``rank``/``world_size``: its rows (not
    its files) are divided, so the shares are equal even when the shards do not divide evenly.
    """
    from datasets import IterableDataset
    from datasets.distributed import split_dataset_by_node

    from bigearthnet_txt.streamed_dataset import StreamedDataset

    if not isinstance(dataset, IterableDataset):
        if drop_remainder:
            raise ValueError("drop_remainder applies to streamed datasets only")
        return split_dataset_by_node(dataset, rank=rank, world_size=world_size)
    if not isinstance(dataset, StreamedDataset):
        raise ValueError(
            "split_by_node needs the IterableDataset returned by "
            "bigearthnet_txt.load_dataset(..., streaming=True) (before further .map/.filter "
            "calls); or pass rank= and world_size= to load_dataset"
        )
    return dataset.reload(rank=rank, world_size=world_size, drop_remainder=drop_remainder)
