"""Patch-grouped batches: each batch holds whole patches, so WFA pools several texts per patch.

    ds = BigEarthNetTxt(DIR, "all", "train", imagery=())        # or load_dataset(..., imagery=())
    sampler = PatchBatchSampler(ds, batch_size=256, texts_per_patch=4, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=Collator(DIR), num_workers=4)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in loader: ...                                  # batch["group_index"]: patches

What an epoch is (:func:`plan_epoch`, shared with the streaming mode of
:mod:`bigearthnet_txt.grouped_stream`):

1. Rows are grouped by patch (``patch_id``); ``types`` keeps only rows of those task types.
2. ``texts_per_patch=k`` keeps ``min(k, n)`` rows of each patch drawn afresh each epoch
   (``None``: all its rows). Each row is used at most once per epoch.
3. Patches are shuffled (``shuffle=True``) with a generator seeded by ``(seed, epoch)``: the same
   order on every rank and for any number of ranks; ``set_epoch`` changes it.
4. Batches are packed greedily in that order: a patch that does not fit in the current batch
   starts the next one, so a patch with at most ``batch_size`` rows is never split and batches
   hold at most ``batch_size`` rows (usually a little fewer). A patch with more rows than
   ``batch_size``: ``oversize="split"`` (default) cuts it into pieces of ``batch_size`` rows, each
   piece packed like a patch (its texts land in consecutive batches and pool per batch);
   ``oversize="truncate"`` keeps ``batch_size`` of its rows, drawn per epoch.
5. Ranks: the batches are dealt round-robin (rank ``r`` gets batches ``r, r + W, …``). Every rank
   gets the same number of batches: where the deal leaves a rank short, its largest batches are
   cut in two (at the patch boundary nearest the middle; inside a patch only if it is the batch's
   only patch). So every row of the epoch is used exactly once over all ranks, nothing is repeated
   or dropped. Fewer rows than ranks is an error.

``rank``/``world_size`` default to ``torch.distributed`` when it is initialised, else 0 and 1.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

log = logging.getLogger(__name__)

OVERSIZE = ("split", "truncate")


def patch_codes(
    patch_ids: pa.Array | pa.ChunkedArray | Sequence[str], sort_key: np.ndarray | None = None
) -> np.ndarray:
    """int64 ``[N]``: the patch of each row as ``0 .. P-1``, numbered in sorted ``patch_id`` order,
    or in the order of ``sort_key`` (one value per row, e.g. ``patch_index``: the order of the
    annotation tables) where given."""
    array = patch_ids if isinstance(patch_ids, pa.Array | pa.ChunkedArray) else pa.array(patch_ids)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if array.null_count:
        raise ValueError("patch_id has nulls; every row needs its patch")
    encoded = pc.dictionary_encode(array)
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    if sort_key is None:
        key = encoded.dictionary.to_numpy(zero_copy_only=False)
    else:
        key = np.empty(len(encoded.dictionary), dtype=np.asarray(sort_key).dtype)
        key[indices] = sort_key
    rank = np.empty(len(key), dtype=np.int64)
    rank[np.argsort(key, kind="stable")] = np.arange(len(key))
    return rank[indices]


def dist_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """``(rank, world_size)``: the given values, else ``torch.distributed``'s, else ``(0, 1)``."""
    if rank is None or world_size is None:
        try:
            import torch.distributed as dist

            initialised = dist.is_available() and dist.is_initialized()
        except ImportError:  # pragma: no cover - torch is a dependency
            initialised = False
        rank = (dist.get_rank() if initialised else 0) if rank is None else rank
        world_size = (
            (dist.get_world_size() if initialised else 1) if world_size is None else world_size
        )
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    return int(rank), int(world_size)


@dataclass
class Batches:
    """Batches as row runs: batch ``i`` is ``rows[bounds[i]:bounds[i + 1]]``; ``cuts`` are the
    positions in ``rows`` where a new patch (or oversize piece) starts."""

    rows: np.ndarray
    bounds: np.ndarray
    cuts: np.ndarray

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def batch(self, i: int) -> np.ndarray:
        return self.rows[self.bounds[i] : self.bounds[i + 1]]

    def sizes(self) -> np.ndarray:
        return np.diff(self.bounds)


def select_rows(
    codes: np.ndarray,
    keep: np.ndarray | None,
    texts_per_patch: int | None,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The rows used this epoch sorted by (patch, row), and the patch of each: ``(rows, patch)``,
    both int64 ``[M]``; at most ``texts_per_patch`` rows per patch, drawn with ``rng``."""
    rows = np.arange(len(codes), dtype=np.int64)
    if keep is not None:
        rows = rows[keep]
    patch = codes[rows]
    if texts_per_patch is None:
        order = np.argsort(patch, kind="stable")
        return rows[order], patch[order]
    draw = rng.random(len(rows))
    order = np.lexsort((draw, patch))
    rows, patch = rows[order], patch[order]
    first = np.r_[0, np.flatnonzero(np.diff(patch)) + 1] if len(patch) else np.zeros(0, np.int64)
    start = np.repeat(first, np.diff(np.r_[first, len(patch)]))
    chosen = (np.arange(len(patch)) - start) < texts_per_patch
    rows, patch = rows[chosen], patch[chosen]
    order = np.lexsort((rows, patch))
    return rows[order], patch[order]


def pack(
    rows: np.ndarray, patch: np.ndarray, patch_order: np.ndarray, batch_size: int, oversize: str,
    seed_epoch: tuple[int, int] = (0, 0),
) -> Batches:  # fmt: skip
    """Greedy packing of the patches (in ``patch_order``, codes; others are left out) into
    batches of at most ``batch_size`` rows; ``rows``/``patch`` sorted by patch as
    :func:`select_rows` gives them."""
    present, first, counts = np.unique(patch, return_index=True, return_counts=True)
    size = max(
        int(patch_order.max()) + 1 if len(patch_order) else 0, len(present) and int(present[-1]) + 1
    )
    slot = np.full(size, -1, dtype=np.int64)  # patch code -> its run in ``rows``
    slot[present] = np.arange(len(present))
    order = slot[patch_order]
    order = order[order >= 0]
    pieces_rows: list[np.ndarray] = []
    unit_sizes: list[int] = []
    for u in order.tolist():
        lo, n = int(first[u]), int(counts[u])
        run = rows[lo : lo + n]
        if n > batch_size:
            if oversize == "truncate":  # a draw of its own per (seed, epoch, patch)
                draw = np.random.default_rng([*seed_epoch, 1, int(present[u])])
                run = np.sort(draw.choice(run, batch_size, replace=False))
                n = batch_size
            else:
                for a in range(0, n, batch_size):
                    pieces_rows.append(run[a : a + batch_size])
                    unit_sizes.append(min(batch_size, n - a))
                continue
        pieces_rows.append(run)
        unit_sizes.append(n)
    flat = np.concatenate(pieces_rows) if pieces_rows else np.zeros(0, np.int64)
    cuts = np.r_[0, np.cumsum(unit_sizes)].astype(np.int64)
    bounds = [0]
    filled = 0
    for size, start in zip(unit_sizes, cuts[:-1].tolist(), strict=True):
        if filled and filled + size > batch_size:
            bounds.append(start)
            filled = 0
        filled += size
    if filled:
        bounds.append(int(cuts[-1]))
    return Batches(flat, np.asarray(bounds, dtype=np.int64), cuts)


def split_batch(batches: Batches, i: int) -> Batches:
    """``batches`` with batch ``i`` (≥ 2 rows) cut in two at the patch boundary nearest its middle
    (inside the patch, at the middle, where it holds one patch only)."""
    lo, hi = int(batches.bounds[i]), int(batches.bounds[i + 1])
    inner = batches.cuts[(batches.cuts > lo) & (batches.cuts < hi)]
    middle = (lo + hi) / 2
    at = int(inner[np.argmin(np.abs(inner - middle))]) if len(inner) else (lo + hi) // 2
    bounds = np.insert(batches.bounds, i + 1, at)
    cuts = batches.cuts if at in set(batches.cuts.tolist()) else np.sort(np.r_[batches.cuts, at])
    return Batches(batches.rows, bounds, cuts)


def equalise(per_rank: list[Batches]) -> list[Batches]:
    """Cut the largest batches of the ranks with fewer batches until every rank has as many as the
    rank with most (every row stays in exactly one batch)."""
    target = max(len(b) for b in per_rank)
    out = []
    for rank, batches in enumerate(per_rank):
        while len(batches) < target:
            sizes = batches.sizes()
            if not len(sizes) or sizes.max() < 2:
                raise ValueError(
                    f"rank {rank} has too few rows ({int(sizes.sum()) if len(sizes) else 0}) for "
                    f"{target} batches; use fewer ranks or a smaller batch_size"
                )
            batches = split_batch(batches, int(np.argmax(sizes)))
        out.append(batches)
    return out


def deal(batches: Batches, world_size: int) -> list[Batches]:
    """Rank ``r`` gets batches ``r, r + W, …`` (row runs copied in that order)."""
    out = []
    for rank in range(world_size):
        picked = range(rank, len(batches), world_size)
        runs = [batches.batch(i) for i in picked]
        sizes = [len(r) for r in runs]
        rows = np.concatenate(runs) if runs else np.zeros(0, np.int64)
        bounds = np.r_[0, np.cumsum(sizes)].astype(np.int64)
        cut_runs = [
            batches.cuts[
                (batches.cuts >= batches.bounds[i]) & (batches.cuts < batches.bounds[i + 1])
            ]
            - batches.bounds[i]
            + bounds[k]
            for k, i in enumerate(picked)
        ]
        cuts = np.concatenate([*cut_runs, [len(rows)]]).astype(np.int64)
        out.append(Batches(rows, bounds, cuts))
    return out


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(epoch)])


def plan_epoch(
    codes: np.ndarray,
    batch_size: int,
    *,
    keep: np.ndarray | None = None,
    texts_per_patch: int | None = None,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    world_size: int = 1,
    oversize: str = "split",
) -> list[Batches]:
    """The batches of every rank for one epoch (see the module docstring); ``codes`` from
    :func:`patch_codes`, ``keep`` an optional bool row mask."""
    rng = epoch_rng(seed, epoch)
    rows, patch = select_rows(codes, keep, texts_per_patch, rng)
    n_patches = int(codes.max()) + 1 if len(codes) else 0
    order = rng.permutation(n_patches) if shuffle else np.arange(n_patches)
    return equalise(deal(pack(rows, patch, order, batch_size, oversize, (seed, epoch)), world_size))


def plan_blocks_epoch(
    codes: np.ndarray,
    batch_size: int,
    block_patches: int,
    *,
    keep: np.ndarray | None = None,
    texts_per_patch: int | None = None,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    world_size: int = 1,
    oversize: str = "split",
) -> list[Batches]:
    """:func:`plan_epoch` for streaming: the patches (numbered in table order) form blocks of
    ``block_patches`` consecutive patches; the blocks are shuffled and so are the patches inside
    each block (seeded by ``(seed, epoch)``); in that order each block goes to the rank with the
    fewest rows so far; each rank packs its blocks into batches; the ranks' batch counts are then
    equalised as there (blocks much larger than a batch keep the cuts rare). A rank thus
    reads a few row groups per block instead of the whole table per batch."""
    rng = epoch_rng(seed, epoch)
    rows, patch = select_rows(codes, keep, texts_per_patch, rng)
    n_patches = int(codes.max()) + 1 if len(codes) else 0
    starts = np.arange(0, n_patches, block_patches)
    blocks = rng.permutation(len(starts)) if shuffle else np.arange(len(starts))
    counts = np.bincount(patch, minlength=n_patches)
    load = np.zeros(world_size, dtype=np.int64)
    owned: list[list[np.ndarray]] = [[] for _ in range(world_size)]
    for b in blocks.tolist():  # each block to the rank with the fewest rows so far
        members = np.arange(starts[b], min(starts[b] + block_patches, n_patches))
        if shuffle:  # each block's own draw: the same for any number of ranks
            members = np.random.default_rng([seed, epoch, 2, b]).permutation(members)
        rank = int(np.argmin(load))
        owned[rank].append(members)
        load[rank] += int(counts[members].sum())
    per_rank = []
    for mine in owned:
        order = np.concatenate(mine) if mine else np.zeros(0, np.int64)
        per_rank.append(pack(rows, patch, order, batch_size, oversize, (seed, epoch)))
    return equalise(per_rank)


def check_arguments(batch_size: int, texts_per_patch: int | None, oversize: str) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if texts_per_patch is not None and texts_per_patch < 1:
        raise ValueError(f"texts_per_patch must be positive or None, got {texts_per_patch}")
    if oversize not in OVERSIZE:
        raise ValueError(f"oversize must be one of {OVERSIZE}, got {oversize!r}")


def dataset_columns(dataset, columns: Sequence[str]) -> dict[str, pa.ChunkedArray | pa.Array]:
    """Columns of a ``BigEarthNetTxt`` (its memory-mapped table) or a ``datasets.Dataset`` (its
    Arrow data through any ``select``/``shuffle`` indices, without the imagery transform)."""
    table = getattr(dataset, "table", None)
    if isinstance(table, pa.Table):
        return {c: table.column(c) for c in columns}
    if hasattr(dataset, "with_format") and hasattr(dataset, "column_names"):
        arrow = dataset.with_format("arrow")
        return {c: arrow[c] for c in columns}
    raise TypeError(
        f"{type(dataset).__name__} is neither a BigEarthNetTxt nor a datasets.Dataset; "
        "use PatchBatchSampler.from_patch_ids for other sequences"
    )


def type_mask(types_column, types: Sequence[str] | None) -> np.ndarray | None:
    if types is None:
        return None
    return pc.is_in(types_column, value_set=pa.array(list(types), pa.string())).to_numpy(
        zero_copy_only=False
    )


class PatchBatchSampler:
    """A ``batch_sampler`` for ``DataLoader`` over a map-style data set (``BigEarthNetTxt`` or a
    ``load_dataset`` result): lists of row indices, whole patches per batch (module docstring).

    ``len(sampler)`` is this rank's number of batches in the current epoch (equal on every rank;
    it may change a little between epochs as the packing does).
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        *,
        texts_per_patch: int | None = None,
        types: Sequence[str] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        oversize: str = "split",
    ):
        columns = dataset_columns(dataset, ["patch_id", "type"])
        self._init(
            patch_codes(columns["patch_id"]), type_mask(columns["type"], types), batch_size,
            texts_per_patch, shuffle, seed, rank, world_size, oversize,
        )  # fmt: skip

    @classmethod
    def from_patch_ids(
        cls, patch_ids: Sequence[str] | pa.Array, batch_size: int, **kwargs
    ) -> PatchBatchSampler:
        """A sampler over rows given by their ``patch_id`` (``types`` not available here)."""
        self = cls.__new__(cls)
        self._init(
            patch_codes(patch_ids), None, batch_size, kwargs.pop("texts_per_patch", None),
            kwargs.pop("shuffle", True), kwargs.pop("seed", 0), kwargs.pop("rank", None),
            kwargs.pop("world_size", None), kwargs.pop("oversize", "split"),
        )  # fmt: skip
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        return self

    def _init(self, codes, keep, batch_size, texts_per_patch, shuffle, seed, rank, world_size,
              oversize):  # fmt: skip
        check_arguments(batch_size, texts_per_patch, oversize)
        self.codes, self.keep = codes, keep
        self.batch_size, self.texts_per_patch = int(batch_size), texts_per_patch
        self.shuffle, self.seed, self.oversize = shuffle, int(seed), oversize
        self.rank, self.world_size = dist_rank_world(rank, world_size)
        self.epoch = 0
        self._plan: tuple[int, Batches] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s draw and order (call before each epoch, on every rank)."""
        self.epoch = int(epoch)

    def batches(self) -> Batches:
        """This rank's batches of the current epoch."""
        if self._plan is None or self._plan[0] != self.epoch:
            per_rank = plan_epoch(
                self.codes, self.batch_size, keep=self.keep, texts_per_patch=self.texts_per_patch,
                shuffle=self.shuffle, seed=self.seed, epoch=self.epoch,
                world_size=self.world_size, oversize=self.oversize,
            )  # fmt: skip
            self._plan = (self.epoch, per_rank[self.rank])
        return self._plan[1]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches()
        for i in range(len(batches)):
            yield batches.batch(i).tolist()

    def __len__(self) -> int:
        return len(self.batches())

    def __repr__(self) -> str:
        return (
            f"PatchBatchSampler(rows={len(self.codes)}, batch_size={self.batch_size}, "
            f"texts_per_patch={self.texts_per_patch}, rank={self.rank}/{self.world_size}, "
            f"epoch={self.epoch})"
        )
