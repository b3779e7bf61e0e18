"""A drop-in for the official ``BENTxTDataModule`` (``ben_txt_datamodule.py``) on converted data.

    # before: from ben_txt_datamodule import BENTxTDataModule
    from bigearthnet_txt.datamodule import BENTxTDataModule

    dm = BENTxTDataModule("path/to/converted", bands="S1S2-10m20m", batch_size=16)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    batch["image_input"]       # float32 [B, C, img_size, img_size], official channel order
    batch["text_input"]        # list[str], <point>/<ref> replaced by point_token/ref_token
    batch["reference_output"]  # list[str]

Needs Lightning (``pip install bigearthnet_txt[lightning]``). The arguments are the official ones
with the converted folder (``data_dir``) in place of ``image_lmdb_file`` + ``metadata_file``.
Batches equal the official dataset's ``__getitem__`` + ``collate_mixed``: the same bands in the
same order, ``stack_and_interpolate``'s upsampling (``upsample_mode``, ``img_size``), the published
``means``/``stds`` (``Normalize``), the same tag replacement and text. ``setup("fit")`` gives
``train_ds``/``val_ds``, ``setup("test")`` ``test_ds`` (test + bench rows, as there),
``setup("bench")`` ``bench_ds``. Rows come in ``ID`` order (the release's row order) where the
official loader keeps the release file's order; the train loader shuffles in both.

One deliberate difference: without ``image_transforms_train`` the official training transform flips
images but not the boxes, points and direction words in the texts; here the training rows get this
package's geometry-correct augmentation (:class:`bigearthnet_txt.augment.Augmenter`: the image, its
boxes, points and words move together; ``augment=False`` turns it off). Given transforms are applied
per image to the raw (un-normalised) stacked tensor, as the official loader does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from bigearthnet_txt.augment import Augmenter
from bigearthnet_txt.collate import Collator
from bigearthnet_txt.random_access import BigEarthNetTxt
from bigearthnet_txt.schema import OFFICIAL_BAND_PRESETS, S1_BANDS, S2_BANDS

try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover - depends on the installed extra
    try:
        import pytorch_lightning as pl
    except ImportError as error:
        raise ImportError(
            "bigearthnet_txt.datamodule needs Lightning: pip install 'bigearthnet_txt[lightning]'"
        ) from error


def official_bands(bands: str | Iterable[str] | None) -> list[str]:
    """The official loader's band resolution: a preset name, a band list, or ``None`` (``all``)."""
    if bands is None:
        return list(OFFICIAL_BAND_PRESETS["all"])
    if isinstance(bands, str):
        if bands not in OFFICIAL_BAND_PRESETS:
            raise KeyError(f"{bands} not in predefined options: {tuple(OFFICIAL_BAND_PRESETS)}")
        return list(OFFICIAL_BAND_PRESETS[bands])
    names = list(bands)
    unknown = [b for b in names if b not in (*S1_BANDS, *S2_BANDS)]
    if unknown:
        raise KeyError(f"unknown bands {unknown}")
    return names


def collate_mixed(batch: Sequence[dict]) -> dict:
    """The official ``collate_mixed``: stacked ``image_input``, lists of texts and outputs."""
    return {
        "image_input": torch.stack([item["image_input"] for item in batch], dim=0),
        "text_input": [item["text_input"] for item in batch],
        "reference_output": [item["reference_output"] for item in batch],
    }


class BENTxTDataset(torch.utils.data.Dataset):
    """The rows of some splits of a converted folder as the official ``BENTxTDataset`` gives them:
    ``ds[i]`` = ``{"image_input": float32 [C, img_size, img_size], "text_input": str,
    "reference_output": str}``, rows in ``ID`` order. ``ds.__getitems__(indices)`` (what a
    ``DataLoader`` calls) reads the imagery of all rows in one pass.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        bands: str | Iterable[str] | None,
        splits: Sequence[str],
        img_size: int = 120,
        upsample_mode: str = "nearest",
        types: Iterable[str] | None = None,
        categories: Iterable[str] | None = None,
        countries: Iterable[str] | None = None,
        seasons: Iterable[str] | None = None,
        climate_zones: Iterable[str] | None = None,
        transform: Callable | None = None,
        point_token: Sequence[str] | None = None,
        ref_token: Sequence[str] | None = None,
        augment: Augmenter | None = None,
        info_fn: Callable = lambda x: x,
        cache_dir: str | os.PathLike | None = None,
    ):
        super().__init__()
        self.bands = official_bands(bands)
        filters = {"types": types, "categories": categories, "countries": countries,
                   "seasons": seasons, "climate_zones": climate_zones}  # fmt: skip
        filters = {k: list(v) for k, v in filters.items() if v is not None}
        self.parts = [
            BigEarthNetTxt(data_dir, "all", split, imagery=(), cache_dir=cache_dir, **filters)
            for split in splits
        ]
        ids = np.concatenate(
            [p.table.column("ID").to_numpy() for p in self.parts] or [np.zeros(0, np.int64)]
        )
        part_of = np.concatenate(
            [np.full(len(p), k) for k, p in enumerate(self.parts)] or [np.zeros(0, np.int64)]
        )
        row_of = np.concatenate([np.arange(len(p)) for p in self.parts] or [np.zeros(0, np.int64)])
        order = np.argsort(ids, kind="stable")
        self.part_of, self.row_of = part_of[order], row_of[order]
        info_fn(f"Split {list(splits)} text data contains {len(order)} entries")
        self.transform = transform
        self.collator = Collator(
            data_dir, bands=self.bands, img_size=img_size, resample=upsample_mode,
            normalize=transform is None, stats="official", tokenizer=None, keep_text=True,
            augment=augment, point_token=tuple(point_token or ("", "")),
            ref_token=tuple(ref_token or ("", "")),
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.part_of)

    def rows(self, indices: Sequence[int]) -> list[dict]:
        """The text rows (``TABLE_SCHEMA`` dicts) at ``indices``."""
        out = []
        for i in indices:
            i = int(i) + (len(self) if int(i) < 0 else 0)
            out.append(self.parts[int(self.part_of[i])]._text(int(self.row_of[i])))
        return out

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        rows = self.rows(indices)
        batch = self.collator(rows)
        images = batch["image"]
        items = []
        for k in range(len(rows)):
            image = images[k] if self.transform is None else self.transform(images[k])
            items.append({"image_input": image, "text_input": batch["prompt"][k],
                          "reference_output": batch["target"][k]})  # fmt: skip
        return items

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def set_epoch(self, epoch: int) -> None:
        """New augmentation draws for epoch ``epoch``."""
        self.collator.set_epoch(epoch)


class BENTxTDataModule(pl.LightningDataModule):
    """The official ``BENTxTDataModule`` over a converted folder (module docstring).

    Arguments as the official ones, ``data_dir`` in place of ``image_lmdb_file`` and
    ``metadata_file``; plus ``augment`` (geometry-correct training augmentation when
    ``image_transforms_train`` is not given), ``seed`` (its draws) and ``cache_dir`` (the row
    cache of :class:`bigearthnet_txt.random_access.BigEarthNetTxt`).
    """

    train_ds = None
    val_ds = None
    test_ds = None
    bench_ds = None

    def __init__(
        self,
        data_dir: str | os.PathLike,
        bands: Iterable[str] | str | None = None,
        img_size: int = 120,
        upsample_mode: str = "nearest",
        types: Iterable[str] | None = None,
        categories: Iterable[str] | None = None,
        countries: Iterable[str] | None = None,
        seasons: Iterable[str] | None = None,
        climate_zones: Iterable[str] | None = None,
        num_workers_dataloader: int | None = 4,
        batch_size: int | None = 16,
        image_transforms_train: Callable | None = None,
        image_transforms_eval: Callable | None = None,
        point_token: Iterable[str] | None = None,
        ref_token: Iterable[str] | None = None,
        info_fn: Callable | None = lambda x: x,
        augment: bool = True,
        seed: int = 0,
        cache_dir: str | os.PathLike | None = None,
    ):
        super().__init__()
        self.num_workers_dataloader = num_workers_dataloader
        self.batch_size = batch_size
        self.pin_memory = torch.cuda.is_available()
        self.bands = official_bands(bands)
        self.ds_kwargs = {
            "data_dir": data_dir, "bands": self.bands, "img_size": img_size,
            "upsample_mode": upsample_mode, "types": types, "categories": categories,
            "countries": countries, "seasons": seasons, "climate_zones": climate_zones,
            "point_token": point_token, "ref_token": ref_token,
            "info_fn": info_fn or (lambda x: x), "cache_dir": cache_dir,
        }  # fmt: skip
        self.image_transforms_train = image_transforms_train
        self.image_transforms_eval = image_transforms_eval
        self.augment = augment
        self.seed = seed

    def setup(self, stage: str | None = None) -> None:
        """``fit``: train + validation; ``test``: test + bench rows; ``bench``: bench; ``None``:
        all of them (as the official module)."""
        if stage in ("fit", None):
            train_augment = (
                Augmenter(seed=self.seed)
                if self.augment and self.image_transforms_train is None
                else None
            )
            self.train_ds = BENTxTDataset(
                **self.ds_kwargs, splits=["train"], transform=self.image_transforms_train,
                augment=train_augment,
            )  # fmt: skip
            self.val_ds = BENTxTDataset(
                **self.ds_kwargs, splits=["validation"], transform=self.image_transforms_eval
            )
        if stage in ("test", None):
            self.test_ds = BENTxTDataset(
                **self.ds_kwargs, splits=["test", "bench"], transform=self.image_transforms_eval
            )
        if stage in ("bench", None):
            self.bench_ds = BENTxTDataset(
                **self.ds_kwargs, splits=["bench"], transform=self.image_transforms_eval
            )

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset, batch_size=self.batch_size, num_workers=self.num_workers_dataloader or 0,
            shuffle=shuffle, pin_memory=self.pin_memory, collate_fn=collate_mixed,
        )  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        if self.trainer is not None and self.train_ds is not None:
            self.train_ds.set_epoch(self.trainer.current_epoch)
        return self._loader(self.train_ds, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_ds, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_ds, shuffle=False)

    def bench_dataloader(self) -> DataLoader:
        return self._loader(self.bench_ds, shuffle=False)
