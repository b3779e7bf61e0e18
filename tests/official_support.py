"""Re-implementations of the official BigEarthNet.txt loader (``ben_txt_datamodule.py``) for the
tests: ``stack_and_interpolate``, ``Normalize`` with the published table, the tag replacement of
``BENTxTDataset.__getitem__``, ``collate_mixed``, reading the bands of a patch as its LMDB holds
them (from the real sample GeoTIFFs)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from imagery_support import S2_SAMPLES, V1_S1_SAMPLES, read_tif

from bigearthnet_txt.schema import OFFICIAL_BAND_STATS, S1_BANDS, S2_BANDS

# The official ``_predefined_bandcombinations``, written out as published.
OFFICIAL_PRESETS = {
    "RGB": ["B04", "B03", "B02"],
    "S2-10m20m": ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"],
    "S1S2-10m20m": ["VV", "VH", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11",
                    "B12"],
    "all": ["VV", "VH", "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09",
            "B11", "B12"],
}  # fmt: skip
MODES = ("nearest", "bilinear", "bicubic")


def official_stack_and_interpolate(data: dict, bands, img_size=120, upsample_mode="nearest"):
    """``BENImageReader.stack_and_interpolate``: per band ``F.interpolate`` of the float32 band
    (``align_corners=True`` for bilinear/bicubic, ``None`` otherwise) unless it already has the
    size, then ``torch.stack`` in the band order."""

    def _interpolate(img_data):
        if not img_data.shape[-2:] == (img_size, img_size):
            return F.interpolate(
                torch.Tensor(np.float32(img_data)).unsqueeze(0).unsqueeze(0),
                (img_size, img_size),
                mode=upsample_mode,
                align_corners=True if upsample_mode in ["bilinear", "bicubic"] else None,
            ).squeeze()
        return torch.Tensor(np.float32(img_data))

    return torch.stack([_interpolate(data[x]) for x in bands])


def official_normalize(img: torch.Tensor, bands) -> torch.Tensor:
    """torchvision ``Normalize(mean, std)`` with the official table: ``(x - mean) / std`` per
    channel, mean and std as float32 tensors."""
    mean = torch.as_tensor([OFFICIAL_BAND_STATS[b]["mean"] for b in bands], dtype=torch.float32)
    std = torch.as_tensor([OFFICIAL_BAND_STATS[b]["std"] for b in bands], dtype=torch.float32)
    return img.sub(mean[:, None, None]).div(std[:, None, None])


@functools.lru_cache(maxsize=32)
def lmdb_bands(patch_id: str) -> dict[str, np.ndarray]:
    """What the official LMDB holds for a patch: every band at its native size, as in the
    GeoTIFFs (S1 from its paired folder where the sample has one)."""
    bands = {b: read_tif(S2_SAMPLES[patch_id], b) for b in S2_BANDS}
    if patch_id in V1_S1_SAMPLES:
        bands.update({b: read_tif(V1_S1_SAMPLES[patch_id], b) for b in S1_BANDS})
    return bands


def official_text_input(text: str, point_token=None, ref_token=None) -> str:
    """``BENTxTDataset.__getitem__``'s replacement (``None`` → ``["", ""]``)."""
    ref_token = ["", ""] if ref_token is None else ref_token
    point_token = ["", ""] if point_token is None else point_token
    text = text.replace("<ref>", ref_token[0]).replace("</ref>", ref_token[1])
    return text.replace("<point>", point_token[0]).replace("</point>", point_token[1])


def official_getitem(sample, bands, img_size=120, upsample_mode="nearest", point_token=None,
                     ref_token=None) -> dict:  # fmt: skip
    """``BENTxTDataset.__getitem__`` with the default eval transform (Resize to the size the image
    already has, then Normalize)."""
    img = official_stack_and_interpolate(
        lmdb_bands(sample.patch_id), bands, img_size, upsample_mode
    )
    img = official_normalize(img, bands)
    text_in = official_text_input(sample.input, point_token, ref_token)
    assert sample.type in {"binary", "mcq", "captioning", "bounding box"}
    return {"image_input": img, "text_input": text_in, "reference_output": sample.output}


def collate_mixed(batch):
    """The official ``collate_mixed``."""
    return {
        "image_input": torch.stack([item["image_input"] for item in batch], dim=0),
        "text_input": [item["text_input"] for item in batch],
        "reference_output": [item["reference_output"] for item in batch],
    }


def official_rows(metadata_file, splits, types=None) -> pd.DataFrame:
    """``BENTxTDataset``'s row selection: filters, then ``split in splits``, file order kept."""
    text_data = pd.read_parquet(metadata_file)
    if types is not None:
        text_data = text_data[text_data["type"].isin(types)]
    text_data = text_data.reset_index(drop=True)
    return text_data[text_data["split"].isin(splits)].reset_index(drop=True)
