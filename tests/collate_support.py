"""Builds the converted embedded sample (imagery store + annotation tables) for the collate
tests."""

from __future__ import annotations

from pathlib import Path

from sample_support import convert_sample

from bigearthnet_txt.conversion.sample_data import (
    METADATA_FILE,
)
from bigearthnet_txt.conversion.synthetic import write_sample


def build_converted_sample(folder: Path) -> Path:
    """``folder/out``: every real sample patch (S2 + S1 where shipped) and its annotation tables."""
    annotations = write_sample(folder / "BigEarthNet.txt.parquet", METADATA_FILE)
    return convert_sample(folder / "out", annotations)
