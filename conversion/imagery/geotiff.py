"""Decode one single-band BigEarthNet GeoTIFF with rasterio.

``read_band(source, path_label)`` takes a file path or the file's bytes (bytes are
decoded in memory: ``tiff_fast`` for plain files, else ``rasterio.io.MemoryFile``; archive members
never touch the disk) and returns a 2-D array
(``uint16`` S2 / reference map, ``float32`` S1; 120×120, 60×60 or 20×20) plus its ``BandProfile``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import MemoryFile

from conversion.imagery.errors import ImageryInputError
from conversion.imagery.tiff_fast import read_plain_geotiff


@dataclass(frozen=True)
class BandProfile:
    """Geo-reference of one band: CRS as ``"EPSG:xxxx"`` (or WKT) and the affine a, b, c, d, e, f."""

    crs: str | None
    transform: tuple[float, float, float, float, float, float]


def _read_dataset(ds) -> tuple[np.ndarray, BandProfile]:
    if ds.count != 1:
        raise ValueError(f"expected 1 band, found {ds.count}")
    array = ds.read(1)
    crs = ds.crs.to_string() if ds.crs is not None else None
    t = ds.transform
    return array, BandProfile(crs, (t.a, t.b, t.c, t.d, t.e, t.f))


def read_band(source: Path | str | bytes, path_label: str, patch: str | None = None):
    """Decode ``source`` (a path or the GeoTIFF bytes); ``path_label`` names it in errors.

    Plain BigEarthNet GeoTIFFs go through ``tiff_fast`` (same result, much faster); any other
    file through rasterio. Returns ``(array, BandProfile)``.
    Raises ``ImageryInputError(kind="corrupt-geotiff")``.
    """
    try:
        data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else Path(source).read_bytes()
    except OSError as err:
        raise ImageryInputError(
            f"{path_label}: unreadable (patch {patch}): {err}", kind="unreadable", path=path_label, patch=patch
        ) from err
    fast = read_plain_geotiff(data)
    if fast is not None:
        return fast[0], BandProfile(fast[1], fast[2])
    return read_band_rasterio(data, path_label, patch)


def read_band_rasterio(source: Path | str | bytes, path_label: str, patch: str | None = None):
    """``read_band`` through rasterio only (``MemoryFile`` for bytes)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            if isinstance(source, (bytes, bytearray, memoryview)):
                with MemoryFile(bytes(source)) as mem, mem.open() as ds:
                    return _read_dataset(ds)
            with rasterio.open(source) as ds:
                return _read_dataset(ds)
    except (RasterioError, ValueError, OSError) as err:
        raise ImageryInputError(
            f"{path_label}: corrupt GeoTIFF (patch {patch}): {err}",
            kind="corrupt-geotiff",
            path=path_label,
            patch=patch,
        ) from err
