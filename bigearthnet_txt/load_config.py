"""``LoadConfig``: the options of :func:`bigearthnet_txt.load_dataset`, as one dataclass.

Shaped like ``datasets``' ``ParquetConfig``: a dataclass with defaults whose ``__post_init__``
checks the values. ``load_dataset(path, "vqa", split, **options)`` builds one from keyword
arguments; ``load_dataset(path, LoadConfig("vqa", streaming=True, ...), split)`` takes one directly
(keyword arguments then override its fields)::

    from bigearthnet_txt import LoadConfig, load_dataset

    cfg = LoadConfig("vqa", streaming=True, shuffle_seed=0, countries=("Ireland",))
    it = load_dataset("bigearthnet_txt", cfg, split="train")
    ds = load_dataset("bigearthnet_txt", cfg, split="train", streaming=False)   # override
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from bigearthnet_txt.configs import config_tables
from bigearthnet_txt.imagery_join import MODALITIES, RESOLUTIONS

STREAM_BATCH_SIZE = 256  # rows per imagery read while streaming (rows of a patch are consecutive)


def _values(values: Iterable[str] | str | None) -> tuple[str, ...] | None:
    if values is None:
        return None
    return (values,) if isinstance(values, str) else tuple(values)


@dataclass
class LoadConfig:
    """Options of ``load_dataset`` (all keyword arguments of it; ``name`` is its ``config``).

    Args:
        name: the task config (``captions``, ``binary``, ``mcq``, ``vqa``, ``referring``, ``all``).
        streaming: ``datasets.IterableDataset`` (True) or ``datasets.Dataset`` (False).
        imagery: modalities joined to each row, a subset of ``("s2", "s1", "reference_map")``;
            ``()`` for text only.
        resolution: ``"native"`` (``s2_10m``/``s2_20m``/``s2_60m``) or ``120`` (``s2``
            ``[12, 120, 120]``, 20 m and 60 m bands repeated).
        countries, seasons, climate_zones, categories, types: keep rows whose column is one of
            these values (None: no filter).
        rank, world_size, drop_remainder: streaming only; this node's equal share of rows
            (lengths differ by at most one; ``drop_remainder`` makes them identical).
        shuffle_seed, buffer_size: streaming only; shuffle pieces (same order on every rank) and
            rows in a buffer of ``buffer_size`` rows (None: no shuffling); imagery is joined
            before the buffer, or as rows leave it with fewer than two rows per patch.
        batch_size: streaming only; rows that share one imagery read.
        decode_threads: threads that decode the imagery of one batched read (1: this thread);
            rows joined one at a time (fewer than two rows per patch) decode in this thread.
        cache_dir: ``datasets``' cache folder for the map-style Arrow tables.
        revision, token: a Hub repository's revision and token.
    """

    name: str = "all"
    streaming: bool = False
    imagery: tuple[str, ...] = ("s2", "s1")
    resolution: str | int = "native"
    countries: tuple[str, ...] | None = None
    seasons: tuple[str, ...] | None = None
    climate_zones: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None
    types: tuple[str, ...] | None = None
    rank: int = 0
    world_size: int = 1
    drop_remainder: bool = False
    shuffle_seed: int | None = None
    buffer_size: int = 1000
    batch_size: int = STREAM_BATCH_SIZE
    decode_threads: int = 1
    cache_dir: str | None = None
    revision: str | None = None
    token: str | bool | None = field(default=None, repr=False)

    def __post_init__(self):
        config_tables(self.name)  # ValueError naming the configs
        self.imagery = _values(self.imagery) or ()
        unknown = [m for m in self.imagery if m not in MODALITIES]
        if unknown:
            raise ValueError(f"unknown imagery {unknown}; expected a subset of {MODALITIES}")
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be 'native' or 120, got {self.resolution!r}")
        for name in ("countries", "seasons", "climate_zones", "categories", "types"):
            setattr(self, name, _values(getattr(self, name)))
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, world_size), got {self.rank}/{self.world_size}")
        for name in ("buffer_size", "batch_size", "decode_threads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.cache_dir is not None:
            self.cache_dir = str(self.cache_dir)

    @classmethod
    def of(cls, config: str | LoadConfig, **options) -> LoadConfig:
        """``config`` (a name or a ``LoadConfig``) with ``options`` applied; TypeError for an
        option that is not a field."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(
                f"load_dataset() got unknown options {unknown}; expected some of {sorted(names)}"
            )
        if isinstance(config, LoadConfig):
            return dataclasses.replace(config, **options) if options else config
        return cls(name=config, **options)

    def filters(self) -> dict:
        """The row filter keyword arguments (``bigearthnet_txt.filters.row_filter``)."""
        return {
            "countries": self.countries,
            "seasons": self.seasons,
            "climate_zones": self.climate_zones,
            "categories": self.categories,
            "types": self.types,
        }
