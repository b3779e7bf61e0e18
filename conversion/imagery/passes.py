"""The three conversion passes and the decoding of one patch (runs in worker processes).

A pass reads one modality from its sources into its arrays: ``s2`` (``s2_10m``, ``s2_20m``,
``s2_60m``), ``s1`` (``s1``) and ``reference_map``. Source patch names are resolved to a
``patch_index`` through the plan: S2 by ``patch_id`` or v1.0 name (``s2v1_name``), S1 by
``s1_name``, reference maps by ``patch_id``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bigearthnet_txt.conversion.imagery.errors import ImageryInputError
from bigearthnet_txt.conversion.imagery.geotiff import Expected, read_band
from bigearthnet_txt.conversion.imagery.sources import REFERENCE_MAP_BAND, PatchFiles
from bigearthnet_txt.conversion.imagery.store_writer import band_shape
from bigearthnet_txt.schema import REFERENCE_MAP, S1, S2_ARRAYS, ImageryArray


@dataclass(frozen=True)
class Pass:
    """One modality: its name, arrays, the plan lookups resolving its source names, and the
    error kind of a selected patch it lacks."""

    name: str
    arrays: tuple[ImageryArray, ...]
    lookups: tuple[str, ...]
    missing_kind: str

    def band_files(self, array: ImageryArray) -> tuple[str, ...]:
        return array.bands or (REFERENCE_MAP_BAND,)


S2_PASS = Pass("s2", S2_ARRAYS, ("by_patch_id", "by_s2v1_name"), "missing-s2")
S1_PASS = Pass("s1", (S1,), ("by_s1_name",), "missing-s1")
REFERENCE_MAP_PASS = Pass(
    "reference_map", (REFERENCE_MAP,), ("by_patch_id",), "missing-reference-map"
)
PASSES: dict[str, Pass] = {p.name: p for p in (S2_PASS, S1_PASS, REFERENCE_MAP_PASS)}


@dataclass
class DecodedPatch:
    """Decoded arrays of one patch (``arrays[name]`` has the array's ``band_shape``), its 10 m grid
    geo-reference, or the error that made it bad."""

    index: int
    name: str
    arrays: dict[str, np.ndarray] | None = None
    crs: str | None = None
    transform: tuple[float, ...] | None = None
    error: ImageryInputError | None = None


def decode_patch(pass_name: str, patch: PatchFiles, index: int, patch_id: str) -> DecodedPatch:
    """Read and check every band of ``patch`` for the pass; errors are returned, not raised."""
    spec = PASSES[pass_name]
    try:
        if patch.error is not None:
            raise patch.error
        arrays: dict[str, np.ndarray] = {}
        crs = transform = None
        for array in spec.arrays:
            values = np.empty(band_shape(array), dtype=array.dtype)
            for b, band in enumerate(spec.band_files(array)):
                if band not in patch.files:
                    raise ImageryInputError(
                        f"patch {patch.name} ({patch_id}): missing band {band} "
                        f"(found {sorted(patch.files)})",
                        kind="missing-band",
                        patch=patch_id,
                        path=next(iter(patch.labels.values()), None),
                    )
                label = patch.labels[band]
                expected = Expected(band, (array.size, array.size), array.dtype)
                plane, profile = read_band(patch.files[band], label, patch_id, expected)
                expected.check(plane.shape, plane.dtype, label, patch_id)
                if transform is None and array.resolution_m == 10:
                    crs, transform = profile.crs, profile.transform
                (values[b] if array.bands else values)[...] = plane
            arrays[array.name] = values
        return DecodedPatch(index, patch.name, arrays, crs, transform)
    except ImageryInputError as err:
        return DecodedPatch(index, patch.name, error=err)
