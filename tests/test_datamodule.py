"""The drop-in data module against a re-implementation of the official dataset's ``__getitem__`` and
``collate_mixed`` on the real sample (no augmentation), stage by stage."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import torch
from official_support import collate_mixed, official_getitem, official_rows
from sample_support import convert_sample

from bigearthnet_txt.conversion.sample_data import METADATA_FILE
from bigearthnet_txt.conversion.synthetic import sample_annotations

pytest.importorskip("lightning")
from bigearthnet_txt.datamodule import BENTxTDataModule  # noqa: E402

STAGES = {"train": ["train"], "val": ["validation"], "test": ["test", "bench"], "bench": ["bench"]}


@pytest.fixture(scope="module")
def release_and_folder(tmp_path_factory):
    """The sample release in ID order (the official loader keeps the file's order; the module
    gives rows in ID order) and the folder converted from it."""
    work = tmp_path_factory.mktemp("datamodule")
    release = work / "BigEarthNet.txt.parquet"
    table = sample_annotations(METADATA_FILE)
    pq.write_table(table.sort_by("ID"), release, row_group_size=50)
    return release, convert_sample(work / "out", release)


def official_batches(release, splits, bands, batch_size, **kwargs):
    rows = official_rows(release, splits, kwargs.pop("types", None))
    items = [official_getitem(rows.iloc[i], bands, **kwargs) for i in range(len(rows))]
    return [collate_mixed(items[a : a + batch_size]) for a in range(0, len(items), batch_size)]


def assert_same(ours, theirs, exact):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.keys() == b.keys()
        assert a["text_input"] == b["text_input"]
        assert a["reference_output"] == b["reference_output"]
        assert a["image_input"].dtype == b["image_input"].dtype == torch.float32
        if exact:
            assert torch.equal(a["image_input"], b["image_input"])
        else:
            torch.testing.assert_close(a["image_input"], b["image_input"], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "bands, mode, tokens",
    [
        ("S2-10m20m", "nearest", {}),
        ("RGB", "bicubic", {"point_token": ["<p>", "</p>"], "ref_token": ["<r>", "</r>"]}),
        (["B8A", "B01", "B04"], "bilinear", {"point_token": ["(", ")"]}),
        ("S2-10m20m", "nearest", {"img_size": 128}),
        ("RGB", "bilinear", {"img_size": 224}),
    ],
)
def test_every_stage_equals_the_official_dataset(release_and_folder, tmp_path, bands, mode, tokens):
    release, folder = release_and_folder
    dm = BENTxTDataModule(
        folder, bands=bands, upsample_mode=mode, batch_size=8, num_workers_dataloader=0,
        augment=False, cache_dir=tmp_path, **tokens,
    )  # fmt: skip
    dm.setup(None)
    names = dm.bands
    for stage, splits in STAGES.items():
        if stage == "train":  # shuffled there and here: compare the unshuffled loader
            loader = dm._loader(dm.train_ds, shuffle=False)
        else:
            loader = getattr(dm, f"{stage}_dataloader")()
        want = official_batches(release, splits, names, 8, upsample_mode=mode, **tokens)
        assert_same(list(loader), want, exact=mode == "nearest")


def test_filters_and_setup_stages(release_and_folder, tmp_path):
    release, folder = release_and_folder
    dm = BENTxTDataModule(folder, bands="RGB", types=["mcq"], batch_size=4,
                          num_workers_dataloader=0, augment=False, cache_dir=tmp_path)  # fmt: skip
    dm.setup("test")
    assert dm.train_ds is None and dm.bench_ds is None
    want = official_batches(release, ["test", "bench"], dm.bands, 4, types=["mcq"])
    assert_same(list(dm.test_dataloader()), want, exact=True)


def test_training_rows_get_geometry_correct_augmentation(release_and_folder, tmp_path):
    release, folder = release_and_folder
    plain = BENTxTDataModule(folder, bands="RGB", augment=False, cache_dir=tmp_path,
                             num_workers_dataloader=0)  # fmt: skip
    augmented = BENTxTDataModule(folder, bands="RGB", seed=1, cache_dir=tmp_path,
                                 num_workers_dataloader=0)  # fmt: skip
    plain.setup("fit")
    augmented.setup("fit")
    n = len(plain.train_ds)
    a = augmented.train_ds.__getitems__(range(n))
    p = plain.train_ds.__getitems__(range(n))
    moved = [i for i in range(n) if not torch.equal(a[i]["image_input"], p[i]["image_input"])]
    assert moved
    for i in range(n):  # images are the plain ones flipped/rotated; texts follow the same transform
        flat_a, flat_p = a[i]["image_input"].flatten(1), p[i]["image_input"].flatten(1)
        assert torch.equal(flat_a.sort(dim=1).values, flat_p.sort(dim=1).values)
    assert len(next(iter(augmented.train_dataloader()))["text_input"]) == 16
