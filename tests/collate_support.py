"""Builds the converted embedded sample (imagery store + annotation tables) for the collate tests."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from bigearthnet_txt.schema import PATCH_TABLE
from conversion.annotations import AnnotationSettings, convert_annotations
from conversion.imagery.convert import convert_imagery
from conversion.sample_data import (
    LEGACY_FLAT_S2_DIR,
    METADATA_FILE,
    V1_S1_DIR,
    V1_S2_DIR,
    V2_S1_DIR,
    V2_S2_DIR,
)
from conversion.synthetic import write_sample


def build_converted_sample(folder: Path) -> Path:
    """``folder/out``: every real sample patch (S2 + S1 where shipped) and its annotation tables."""
    annotations = write_sample(folder / "BigEarthNet.txt.parquet", METADATA_FILE)
    out = folder / "out"
    convert_imagery(
        out, s2=[V2_S2_DIR, LEGACY_FLAT_S2_DIR, V1_S2_DIR], s1=[V2_S1_DIR, V1_S1_DIR],
        annotations=[annotations], allow_missing_s1=True, progress=False,
    )  # fmt: skip
    patches = pq.read_table(out / PATCH_TABLE, columns=["patch_id", "patch_index"])
    patch_index = dict(
        zip(patches["patch_id"].to_pylist(), patches["patch_index"].to_pylist(), strict=True)
    )
    convert_annotations(annotations, out, AnnotationSettings(), patch_index=patch_index, progress=False,
                        overwrite=True)  # fmt: skip
    return out
