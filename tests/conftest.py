"""Shared fixtures: the embedded real sample and annotation files in the release schema."""

from __future__ import annotations

from pathlib import Path

import pytest

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
