"""Helpers for the imagery tests: the real sample patches, archive building, store comparison."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import rasterio
import zarr

from bigearthnet_txt.conversion.sample_data import (
    LEGACY_FLAT_S2_DIR,
    METADATA_FILE,
    SNOW_CLOUD_METADATA_FILE,
    V1_S1_DIR,
    V1_S2_DIR,
    V2_S2_DIR,
)
from bigearthnet_txt.schema import IMAGERY_STORE, PATCH_TABLE

METADATA = [METADATA_FILE, SNOW_CLOUD_METADATA_FILE]
# patch_id -> folder of its S2 band files, for every S2 sample (v2, legacy flat, v1).
S2_SAMPLES: dict[str, Path] = {
    "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43": next(V2_S2_DIR.glob("*/*_75_43")),
    "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_89_18": next(V2_S2_DIR.glob("*/*_89_18")),
    "S2A_MSIL2A_20180526T100031_N9999_R122_T34WFU_14_23": next(LEGACY_FLAT_S2_DIR.glob("*_14_23")),
    "S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU_36_85": V1_S2_DIR
    / "S2A_MSIL2A_20170617T113321_36_85",
    "S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU_04_55": V1_S2_DIR
    / "S2A_MSIL2A_20170617T113321_4_55",
    "S2A_MSIL2A_20171221T112501_N9999_R037_T29SND_56_35": V1_S2_DIR
    / "S2A_MSIL2A_20171221T112501_56_35",
}
# patch_id -> folder of its S1 band files (the v1 pairs).
V1_S1_SAMPLES: dict[str, Path] = {
    "S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU_36_85": V1_S1_DIR
    / "S1A_IW_GRDH_1SDV_20170617T064724_29UPU_36_85",
    "S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU_04_55": V1_S1_DIR
    / "S1A_IW_GRDH_1SDV_20170617T064724_29UPU_4_55",
    "S2A_MSIL2A_20171221T112501_N9999_R037_T29SND_56_35": V1_S1_DIR
    / "S1A_IW_GRDH_1SDV_20171221T064238_29SND_56_35",
}
V1_PAIRS = list(V1_S1_SAMPLES)
S2_SOURCES = [V2_S2_DIR, LEGACY_FLAT_S2_DIR, V1_S2_DIR]


def read_tif(folder: Path, band: str) -> np.ndarray:
    """What rasterio reads from the band file of a sample folder."""
    (path,) = [p for p in folder.iterdir() if p.stem.endswith("_" + band)]
    with rasterio.open(path) as ds:
        return ds.read(1)


def make_archive(folders: dict[str, Path], top: str, out: Path) -> Path:
    """A ``.tar.zst`` like the official ones: GNU tar, members sorted, ``top/<product>/<patch>/``,
    zstd level 6. ``folders`` maps the patch folder name to a folder of band files."""
    staging = out.parent / (out.name + ".staging")
    for name, folder in folders.items():
        product = "_".join(name.split("_")[: -3 if top == "BigEarthNet-S1" else -2])
        target = staging / top / product / name
        target.mkdir(parents=True)
        for f in folder.iterdir():
            if f.suffix in (".tif", ".tiff"):
                shutil.copyfile(f, target / f.name.replace(folder.name, name))
    tar_path = out.with_suffix("")
    subprocess.run(
        ["tar", "--sort=name", "--format=gnu", "-cf", str(tar_path), "-C", str(staging), top],
        check=True,
    )
    subprocess.run(["zstd", "-q", "-6", "--rm", "-f", str(tar_path), "-o", str(out)], check=True)
    shutil.rmtree(staging)
    return out


def store_arrays(out_dir: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(out_dir / IMAGERY_STORE, mode="r")
    return {name: group[name][:] for name in sorted(group.array_keys())}


def assert_same_store(a: Path, b: Path) -> None:
    """Arrays (bit for bit, NaN included) and patch tables equal."""
    arrays_a, arrays_b = store_arrays(a), store_arrays(b)
    assert arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        assert arrays_a[name].view(np.uint8).tobytes() == arrays_b[name].view(np.uint8).tobytes(), (
            name
        )
    assert pq.read_table(a / PATCH_TABLE).equals(pq.read_table(b / PATCH_TABLE))
