"""Location of the real BigEarthNet sample files shipped with the package.

``SAMPLES_DIR`` holds an unmodified copy of the project's sample set (see ``SOURCES.md`` in it for
provenance, licence CDLA-Permissive-1.0 and attribution):

* ``bigearthnet_v2/`` — v2.0 layout: ``BigEarthNet-S2`` (2 patches), ``BigEarthNet-S1`` (3 patches),
  ``Reference_Maps`` (1 patch), the complete ``metadata.parquet`` and the snow/cloud parquet;
* ``bigearthnet_v2_legacy_flat/S2`` — pre-release flat layout with ``.tiff`` files (1 patch);
* ``bigearthnet_v1/s2-tiny`` and ``s1-tiny`` — three complete v1.0 S1/S2 pairs.
"""

from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
V2_DIR = SAMPLES_DIR / "bigearthnet_v2"
V2_S2_DIR = V2_DIR / "BigEarthNet-S2"
V2_S1_DIR = V2_DIR / "BigEarthNet-S1"
V2_REFERENCE_MAPS_DIR = V2_DIR / "Reference_Maps"
LEGACY_FLAT_S2_DIR = SAMPLES_DIR / "bigearthnet_v2_legacy_flat" / "S2"
V1_S2_DIR = SAMPLES_DIR / "bigearthnet_v1" / "s2-tiny"
V1_S1_DIR = SAMPLES_DIR / "bigearthnet_v1" / "s1-tiny"
METADATA_FILE = V2_DIR / "metadata.parquet"
SNOW_CLOUD_METADATA_FILE = V2_DIR / "metadata_for_patches_with_snow_cloud_or_shadow.parquet"

#: ``convert_imagery`` keyword arguments for every shipped sample imagery source: the six S2
#: patches (v2, legacy flat, v1) and all S1 patches; only the v1 pairs have both, so conversions of
#: the S2 samples need ``allow_missing_s1=True``.
SAMPLE_IMAGERY_SOURCES: dict[str, list[Path]] = {
    "s2": [V2_S2_DIR, LEGACY_FLAT_S2_DIR, V1_S2_DIR],
    "s1": [V1_S1_DIR, V2_S1_DIR],
    "metadata": [METADATA_FILE, SNOW_CLOUD_METADATA_FILE],
}
