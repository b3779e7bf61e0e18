"""The embedded real sample converted with imagery, as the tests that read a converted folder
need it."""

from __future__ import annotations

from pathlib import Path

from bigearthnet_txt.conversion.annotations import AnnotationSettings, convert_annotations
from bigearthnet_txt.conversion.imagery.codecs import DEFAULT_SHARD_SIZE
from bigearthnet_txt.conversion.imagery.convert import convert_imagery, patch_index_map
from bigearthnet_txt.conversion.sample_data import SAMPLE_IMAGERY_SOURCES


def convert_sample(
    out: Path,
    release_file: Path,
    *,
    shard_size: int = DEFAULT_SHARD_SIZE,
    settings: AnnotationSettings | None = None,
) -> Path:
    """Convert every real sample patch (S2; S1 where the sample has its pair) and the annotation
    tables of ``release_file`` into ``out``; small ``shard_size`` / ``settings.rows_per_shard``
    give uneven shard counts."""
    convert_imagery(
        out, **SAMPLE_IMAGERY_SOURCES, annotations=[release_file], allow_missing_s1=True,
        shard_size=shard_size, progress=False,
    )  # fmt: skip
    convert_annotations(
        release_file,
        out,
        settings or AnnotationSettings(),
        patch_index=patch_index_map(out),
        progress=False,
    )
    return out
