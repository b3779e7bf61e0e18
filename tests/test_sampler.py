"""Patch-grouped batches: map-style sampler and grouped streaming on a converted folder of many
real (replicated) patches, plus the planning on made-up patch sizes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from replicated_support import convert_replicated
from torch.utils.data import DataLoader

from bigearthnet_txt.collate import Collator
from bigearthnet_txt.grouped_stream import GroupedStream
from bigearthnet_txt.loading import load_dataset
from bigearthnet_txt.pooling import WeightedFeatureAggregation
from bigearthnet_txt.random_access import BigEarthNetTxt
from bigearthnet_txt.sampler import PatchBatchSampler


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return convert_replicated(tmp_path_factory.mktemp("sampler"), 40)


@pytest.fixture(scope="module")
def train(converted, tmp_path_factory):
    return BigEarthNetTxt(
        converted, "all", "train", imagery=(), cache_dir=tmp_path_factory.mktemp("arrow")
    )


def patch_of_rows(ds) -> list[str]:
    return ds.table.column("patch_id").to_pylist()


def check_epoch(per_rank: list[list[list[int]]], patches: list[str], batch_size: int, rows):
    """Equal counts, every row of ``rows`` exactly once, at most batch_size rows, whole patches."""
    assert len({len(b) for b in per_rank}) == 1
    seen = [i for batches in per_rank for batch in batches for i in batch]
    assert sorted(seen) == sorted(rows)
    where: dict[str, set] = {}
    for r, batches in enumerate(per_rank):
        for j, batch in enumerate(batches):
            assert 0 < len(batch) <= batch_size
            for i in batch:
                where.setdefault(patches[i], set()).add((r, j))
    sizes = Counter(patches[i] for i in rows)
    for patch, places in where.items():
        if sizes[patch] <= batch_size:
            assert len(places) == 1, patch  # never split a patch that fits


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_map_sampler_covers_every_row_once_per_epoch(train, world_size):
    patches = patch_of_rows(train)
    for epoch in range(2):
        per_rank = []
        for rank in range(world_size):
            sampler = PatchBatchSampler(train, 64, seed=1, rank=rank, world_size=world_size)
            sampler.set_epoch(epoch)
            per_rank.append(list(sampler))
            assert len(sampler) == len(per_rank[-1])
        check_epoch(per_rank, patches, 64, range(len(train)))


def test_order_changes_with_epoch_not_with_rank_count(train):
    def rank_rows(world_size, rank, epoch):
        sampler = PatchBatchSampler(train, 64, seed=3, rank=rank, world_size=world_size)
        sampler.set_epoch(epoch)
        return [i for batch in sampler for i in batch]

    one = PatchBatchSampler(train, 64, seed=3, rank=0, world_size=1)
    global_batches = list(one)
    for world_size in (2, 3):
        for rank in range(world_size):
            dealt = [i for b in global_batches[rank::world_size] for i in b]
            assert rank_rows(world_size, rank, 0) == dealt
    assert rank_rows(1, 0, 0) != rank_rows(1, 0, 1)
    assert rank_rows(1, 0, 1) == rank_rows(1, 0, 1)
    other_seed = PatchBatchSampler(train, 64, seed=4, rank=0, world_size=1)
    assert list(other_seed) != global_batches


def test_texts_per_patch_and_types(train):
    patches = patch_of_rows(train)
    types = train.table.column("type").to_pylist()
    sampler = PatchBatchSampler(train, 32, texts_per_patch=4, types=["mcq", "binary"], seed=0)
    drawn = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        rows = [i for b in batches for i in b]
        assert len(rows) == len(set(rows))
        assert all(types[i] in ("mcq", "binary") for i in rows)
        per_patch = Counter(patches[i] for i in rows)
        assert set(per_patch.values()) == {4} and len(per_patch) == len(set(patches))
        assert all(len(b) == 32 for b in batches)  # 8 whole patches of 4 texts each
        drawn.append(sorted(rows))
    assert drawn[0] != drawn[1]  # a fresh draw each epoch


def test_oversize_patches_split_or_truncate():
    patch_ids = ["a"] * 10 + ["b"] * 3 + ["c"] * 2
    split = PatchBatchSampler.from_patch_ids(patch_ids, 4, shuffle=False)
    assert sorted(i for b in split for i in b) == list(range(15))
    assert all(len(b) <= 4 for b in split)
    assert [len(b) for b in split][:3] == [4, 4, 2]  # "a" in pieces of 4; "b" starts a batch
    truncated = PatchBatchSampler.from_patch_ids(patch_ids, 4, shuffle=False, oversize="truncate")
    rows = [i for b in truncated for i in b]
    assert sum(i < 10 for i in rows) == 4 and len(rows) == 9


def test_planning_on_random_patch_sizes():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 40, size=300)
    patch_ids = [f"p{k:04d}" for k, n in enumerate(sizes) for _ in range(n)]
    order = rng.permutation(len(patch_ids))  # rows of a patch need not be contiguous
    patch_ids = [patch_ids[i] for i in order]
    for world_size in (1, 2, 3, 5):
        per_rank = [
            list(
                PatchBatchSampler.from_patch_ids(
                    patch_ids, 48, seed=7, rank=r, world_size=world_size
                )
            )
            for r in range(world_size)
        ]
        check_epoch(per_rank, patch_ids, 48, range(len(patch_ids)))
    with pytest.raises(ValueError):
        PatchBatchSampler.from_patch_ids(["a", "b"], 1, rank=0, world_size=3).__len__()


def test_load_dataset_results_work_too(converted, train, tmp_path):
    ds = load_dataset(converted, "all", split="train", imagery=(), cache_dir=str(tmp_path))
    a = list(PatchBatchSampler(ds, 64, seed=5))
    b = list(PatchBatchSampler(train, 64, seed=5))
    ids_a = [[ds[i]["ID"] for i in batch] for batch in a]
    ids_b = [[train.table.column("ID")[i].as_py() for i in batch] for batch in b]
    assert sorted(map(sorted, ids_a)) == sorted(map(sorted, ids_b))


def test_collated_batch_of_8_patches_by_4_texts_pools_to_8_features(converted, train):
    sampler = PatchBatchSampler(train, 32, texts_per_patch=4, seed=0)
    collator = Collator(converted, bands="RGB", tokenizer=None)
    loader = DataLoader(train, batch_sampler=sampler, collate_fn=collator, num_workers=0)
    batch = next(iter(loader))
    assert batch["image"].shape == (32, 3, 120, 120)
    assert batch["group_index"].unique().numel() == 8
    assert torch.bincount(batch["group_index"]).tolist() == [4] * 8
    features = torch.randn(32, 16)
    for pool in (WeightedFeatureAggregation("uniqueness"), WeightedFeatureAggregation("attention")):
        pooled = pool(features, batch["group_index"], weights=batch["redundancy_weight"])
        assert pooled.shape == (8, 16)


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_grouped_stream_covers_every_row_once(converted, train, world_size):
    patches_by_id = dict(
        zip(train.table.column("ID").to_pylist(), patch_of_rows(train), strict=True)
    )
    ids = list(patches_by_id)
    for epoch in range(2):
        per_rank = []
        for rank in range(world_size):
            stream = GroupedStream(converted, "all", "train", batch_size=64, seed=2,
                                   rank=rank, world_size=world_size, block_patches=3)  # fmt: skip
            stream.set_epoch(epoch)
            batches = list(stream)
            assert len(batches) == len(stream)
            per_rank.append([[ids.index(row["ID"]) for row in b] for b in batches])
        check_epoch(per_rank, patch_of_rows(train), 64, range(len(ids)))


def test_grouped_stream_order_depends_on_epoch_and_workers_share_batches(converted):
    stream = GroupedStream(converted, "vqa", "train", batch_size=40, texts_per_patch=3,
                           types=["binary", "mcq"], seed=0, block_patches=4)  # fmt: skip
    first = [[r["ID"] for r in b] for b in stream]
    again = [[r["ID"] for r in b] for b in stream]
    stream.set_epoch(1)
    second = [[r["ID"] for r in b] for b in stream]
    assert first == again and first != second
    loader = DataLoader(stream, batch_size=None, num_workers=2)
    via_workers = [[r["ID"] for r in b] for b in loader]
    assert sorted(map(sorted, via_workers)) == sorted(map(sorted, second))
    for batch in stream:
        assert all(row["type"] in ("binary", "mcq") for row in batch)
        assert set(Counter(row["patch_id"] for row in batch).values()) <= {1, 2, 3}
