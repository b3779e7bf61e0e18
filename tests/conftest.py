"""Shared fixtures: the embedded real sample and annotation files in the release schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from sample_support import convert_sample

from conversion.annotations import AnnotationSettings
from conversion.sample_data import METADATA_FILE
from conversion.synthetic import sample_annotations, write_sample


@pytest.fixture(scope="session")
def sample_release_table():
    """Release-schema rows for the real sample patches (pyarrow.Table)."""
    return sample_annotations(METADATA_FILE)


@pytest.fixture(scope="session")
def sample_release_file(tmp_path_factory) -> Path:
    """``BigEarthNet.txt``-schema parquet for the real sample patches (small row groups)."""
    return write_sample(tmp_path_factory.mktemp("release") / "BigEarthNet.txt.parquet", METADATA_FILE)


@pytest.fixture(scope="session")
def converted_sample(tmp_path_factory, sample_release_file) -> Path:
    """The embedded sample converted with imagery, in small shards so shard counts are uneven
    (2 patches per imagery shard; 7 rows per Parquet file, row groups of 5)."""
    return convert_sample(
        tmp_path_factory.mktemp("converted") / "bigearthnet_txt",
        sample_release_file,
        shard_size=2,
        settings=AnnotationSettings(rows_per_shard=7, row_group_size=5),
    )
