"""Builds the converted embedded sample the loading tests read (imagery + small, uneven shards)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from conversion.annotations import AnnotationSettings, convert_annotations
from conversion.imagery.convert import convert_imagery
from conversion.sample_data import (
    LEGACY_FLAT_S2_DIR,
    METADATA_FILE,
    SNOW_CLOUD_METADATA_FILE,
    V1_S1_DIR,
    V1_S2_DIR,
    V2_S2_DIR,
)


def convert_sample(out: Path, release_file: Path) -> Path:
    """The embedded sample converted into ``out`` with imagery; small shards so shard counts are uneven."""
    convert_imagery(
        out, s2=[V2_S2_DIR, LEGACY_FLAT_S2_DIR, V1_S2_DIR], s1=[V1_S1_DIR],
        metadata=[METADATA_FILE, SNOW_CLOUD_METADATA_FILE], annotations=[release_file],
        allow_missing_s1=True, shard_size=2, progress=False,
    )  # fmt: skip
    patches = pq.read_table(out / "patches.parquet", columns=["patch_id", "patch_index"])
    patch_index = dict(
        zip(patches["patch_id"].to_pylist(), patches["patch_index"].to_pylist(), strict=True)
    )
    convert_annotations(
        release_file, out, AnnotationSettings(rows_per_shard=7, row_group_size=5),
        patch_index=patch_index, progress=False,
    )  # fmt: skip
    return out
