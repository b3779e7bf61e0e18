"""Shared fixtures: the embedded real sample and annotation files in the release schema."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from imagery_support import METADATA, S2_SAMPLES, S2_SOURCES
from sample_support import convert_sample

from bigearthnet_txt.conversion.annotations import AnnotationSettings
from bigearthnet_txt.conversion.imagery.convert import convert_imagery
from bigearthnet_txt.conversion.sample_data import METADATA_FILE, V1_S1_DIR
from bigearthnet_txt.conversion.synthetic import sample_annotations, write_sample

# Child processes the tests start import this checkout, as the tests do, not an installed copy.
CHECKOUT = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")])
)


@pytest.fixture(scope="session")
def sample_release_table():
    """Release-schema rows for the real sample patches (pyarrow.Table)."""
    return sample_annotations(METADATA_FILE)


@pytest.fixture(scope="session")
def sample_release_file(tmp_path_factory) -> Path:
    """``BigEarthNet.txt``-schema parquet for the real sample patches (small row groups)."""
    return write_sample(
        tmp_path_factory.mktemp("release") / "BigEarthNet.txt.parquet", METADATA_FILE
    )


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


@pytest.fixture(scope="session")
def s2_sample_store_dir(tmp_path_factory) -> Path:
    """Imagery only, from folders: all six S2 samples (v2, legacy flat, v1) with the v1 S1 pairs
    (the others have no S1), two patches per shard. Tests only read it."""
    out = tmp_path_factory.mktemp("s2_sample_store")
    convert_imagery(
        out, s2=S2_SOURCES, s1=[V1_S1_DIR], metadata=METADATA, patch_ids=list(S2_SAMPLES),
        allow_missing_s1=True, shard_size=2, progress=False,
    )  # fmt: skip
    return out
