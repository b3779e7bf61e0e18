"""Replicated real patches for the benchmarks: the three real v1.0 S1/S2 pairs shipped in
``conversion/samples`` hard-linked under ``n`` distinct v2-style names, with a matching
``metadata.parquet`` and, for the loading benchmarks, annotation tables in the release schema.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bigearthnet_txt.conversion.annotations import AnnotationSettings, convert_annotations
from bigearthnet_txt.conversion.imagery.codecs import DEFAULT_PRESET
from bigearthnet_txt.conversion.imagery.convert import convert_imagery, patch_index_map
from bigearthnet_txt.conversion.sample_data import V1_S1_DIR, V1_S2_DIR
from bigearthnet_txt.conversion.synthetic import CLIMATE_ZONES, PatchInfo, annotations_for

PAIRS = [
    ("S2A_MSIL2A_20170617T113321_36_85", "S1A_IW_GRDH_1SDV_20170617T064724_29UPU_36_85"),
    ("S2A_MSIL2A_20170617T113321_4_55", "S1A_IW_GRDH_1SDV_20170617T064724_29UPU_4_55"),
    ("S2A_MSIL2A_20171221T112501_56_35", "S1A_IW_GRDH_1SDV_20171221T064238_29SND_56_35"),
]
S2_PRODUCT = "S2A_MSIL2A_20170617T113321_N9999_R080_T29UPU"
S1_PRODUCT = "S1A_IW_GRDH_1SDV_20170617T064724"


def replicate(root: Path, n: int) -> tuple[Path, Path, Path, list[Path], list[Path]]:
    """Hard-linked v2-layout folders of ``n`` patches + their metadata parquet."""
    s2_root, s1_root = root / "BigEarthNet-S2", root / "BigEarthNet-S1"
    rows = []
    s2_folders, s1_folders = [], []
    for k in range(n):
        s2_src, s1_src = PAIRS[k % len(PAIRS)]
        patch_id = f"{S2_PRODUCT}_{k // 100:03d}_{k % 100:02d}"
        s1_name = f"{S1_PRODUCT}_29UPU_{k // 100:03d}_{k % 100:02d}"
        for src_dir, src_name, dst_dir, dst_name in (
            (V1_S2_DIR / s2_src, s2_src, s2_root / S2_PRODUCT / patch_id, patch_id),
            (V1_S1_DIR / s1_src, s1_src, s1_root / S1_PRODUCT / s1_name, s1_name),
        ):
            dst_dir.mkdir(parents=True)
            for f in src_dir.glob("*.tif"):
                os.link(f, dst_dir / f.name.replace(src_name, dst_name))
        s2_folders.append(s2_root / S2_PRODUCT / patch_id)
        s1_folders.append(s1_root / S1_PRODUCT / s1_name)
        split = ("train", "train", "train", "validation", "test")[k % 5]
        rows.append(
            {
                "patch_id": patch_id,
                "labels": ["Pastures"],
                "split": split,
                "country": "Ireland",
                "s1_name": s1_name,
                "s2v1_name": f"v1_{k}",
                "contains_seasonal_snow": False,
                "contains_cloud_or_shadow": False,
            }
        )
    metadata = root / "metadata.parquet"
    pq.write_table(pa.Table.from_pylist(rows), metadata)
    return s2_root, s1_root, metadata, s2_folders, s1_folders


def convert_replicated(
    work: Path,
    n: int,
    *,
    preset: str = DEFAULT_PRESET,
    rows_per_shard: int = 20_000,
    workers: int = 1,
) -> tuple[Path, list[Path], list[Path]]:
    """``work/bigearthnet_txt``: ``n`` replicated patches converted with ~20 release-like texts
    each; returns the folder and the S2 / S1 patch folders it was converted from."""
    s2_root, s1_root, metadata, s2_folders, s1_folders = replicate(work / "src", n)
    out = work / "bigearthnet_txt"
    convert_imagery(
        out, s2=[s2_root], s1=[s1_root], metadata=[metadata], all_patches=True, preset=preset,
        workers=workers, progress=False,
    )  # fmt: skip
    infos = [
        PatchInfo(
            m["patch_id"],
            m["s1_name"],
            m["split"],
            list(m["labels"]),
            m["country"],
            "Summer",
            CLIMATE_ZONES[0],
            53.0,
            -8.0,
        )
        for m in pq.read_table(metadata).to_pylist()
    ]
    release = work / "release.parquet"
    pq.write_table(annotations_for(infos, seed=0), release)
    convert_annotations(
        release, out, AnnotationSettings(rows_per_shard=rows_per_shard),
        patch_index=patch_index_map(out), progress=False,
    )  # fmt: skip
    return out, s2_folders, s1_folders
