"""Decode one single-band BigEarthNet GeoTIFF with rasterio.

``read_band(source, path_label)`` takes a file path or the file's bytes (bytes are
decoded in memory: ``tifffile`` for GeoTIFFs with a plain EPSG geo-reference, else
``rasterio.io.MemoryFile``; archive members never touch the disk) and returns a 2-D array
(``uint16`` S2 / reference map, ``float32`` S1; 120×120, 60×60 or 20×20) plus its ``BandProfile``.
"""

from __future__ import annotations

import io
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import tifffile
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import MemoryFile

from bigearthnet_txt.conversion.imagery.errors import ImageryInputError

_PIXEL_IS_AREA = 1


@dataclass(frozen=True)
class BandProfile:
    """Geo-reference of one band: CRS as ``"EPSG:xxxx"`` (or WKT)
    and the affine a, b, c, d, e, f."""

    crs: str | None
    transform: tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class Expected:
    """What a band file must hold, checked before its pixels are decoded: ``band`` (for messages),
    the 2-D ``shape`` and the ``dtype``."""

    band: str
    shape: tuple[int, int]
    dtype: str

    def check(self, shape: tuple[int, ...], dtype, path_label: str, patch: str | None) -> None:
        """Raise ``ImageryInputError`` (``wrong-dtype``, ``wrong-shape``) unless they match."""
        if np.dtype(dtype) != np.dtype(self.dtype):
            raise ImageryInputError(
                f"{path_label}: wrong dtype {np.dtype(dtype)} for band {self.band} "
                f"of patch {patch} (expected {self.dtype})",
                kind="wrong-dtype",
                path=path_label,
                patch=patch,
            )
        if tuple(shape) != self.shape:
            raise ImageryInputError(
                f"{path_label}: wrong shape {tuple(shape)} for band {self.band} of patch {patch} "
                f"(expected {self.shape})",
                kind="wrong-shape",
                path=path_label,
                patch=patch,
            )


def _read_dataset(ds, expected: Expected | None, path_label: str, patch: str | None):
    if ds.count != 1:
        raise ValueError(f"expected 1 band, found {ds.count}")
    if expected is not None:
        expected.check(ds.shape, ds.dtypes[0], path_label, patch)
    if ds.crs is None or ds.transform.is_identity:
        raise ImageryInputError(
            f"{path_label}: no geo-reference (CRS {ds.crs}, transform "
            f"{'identity' if ds.transform.is_identity else 'set'}) for patch {patch}; BigEarthNet "
            "band files are geo-referenced: replace the file (or skip the patch with --skip-bad)",
            kind="no-georeference",
            path=path_label,
            patch=patch,
        )
    array = ds.read(1)
    crs = ds.crs.to_string()
    t = ds.transform
    return array, BandProfile(crs, (t.a, t.b, t.c, t.d, t.e, t.f))


def read_band(
    source: Path | str | bytes,
    path_label: str,
    patch: str | None = None,
    expected: Expected | None = None,
):
    """Decode ``source`` (a path or the GeoTIFF bytes); ``path_label`` names it in errors. With
    ``expected``, its shape and dtype are checked before the pixels are decoded.

    BigEarthNet's GeoTIFFs (one band, an EPSG code, tiepoint + pixel scale) are decoded with
    tifffile, which gives rasterio's result without opening a GDAL dataset (several times
    faster); any other file goes through rasterio. Returns ``(array, BandProfile)``.
    Raises ``ImageryInputError`` naming the file and patch: ``corrupt-geotiff`` for a file no
    decoder can read (a damaged deflate stream included), ``no-georeference`` for one without CRS
    or with an identity transform (which would put ``crs=None`` into ``patches.parquet``).
    """
    try:
        data = (
            bytes(source)
            if isinstance(source, (bytes, bytearray, memoryview))
            else Path(source).read_bytes()
        )
    except OSError as err:
        raise ImageryInputError(
            f"{path_label}: unreadable (patch {patch}): {err}",
            kind="unreadable",
            path=path_label,
            patch=patch,
        ) from err
    try:
        fast = read_band_tifffile(data, expected, path_label, patch)
        if fast is not None:
            return fast
        return read_band_rasterio(data, path_label, patch, expected)
    except ImageryInputError:
        raise
    except Exception as err:  # noqa: BLE001 - any decoder failure is a corrupt file of this patch
        raise ImageryInputError(
            f"{path_label}: corrupt GeoTIFF (patch {patch}): {type(err).__name__}: {err}",
            kind="corrupt-geotiff",
            path=path_label,
            patch=patch,
        ) from err


def read_band_tifffile(
    data: bytes, expected: Expected | None = None, path_label: str = "", patch: str | None = None
) -> tuple[np.ndarray, BandProfile] | None:
    """``(array, BandProfile)`` via tifffile, or ``None`` when the geo-reference is not a plain
    EPSG code with one tiepoint and a pixel scale (pixel-is-area), or tifffile cannot read it.
    ``expected`` is checked against the page's shape and dtype before decoding."""
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages.first
            geo = tif.geotiff_metadata
            if len(tif.pages) != 1 or page.samplesperpixel != 1 or not geo:
                return None
            code = geo.get("ProjectedCSTypeGeoKey") or geo.get("GeographicTypeGeoKey")
            scale, tiepoint = geo.get("ModelPixelScale"), geo.get("ModelTiepoint")
            if code is None or int(code) in (0, 32767) or scale is None or tiepoint is None:
                return None
            if len(tiepoint) != 6 or "ModelTransformation" in geo:
                return None
            if int(geo.get("GTRasterTypeGeoKey", _PIXEL_IS_AREA)) != _PIXEL_IS_AREA:
                return None
            if expected is not None:
                expected.check(page.shape, page.dtype, path_label, patch)
            array = page.asarray()
    except ImageryInputError:
        raise
    except (tifffile.TiffFileError, ValueError, KeyError, IndexError, TypeError, zlib.error):
        return None  # rasterio decides (and names the file and patch if it is corrupt)
    sx, sy = scale[:2]
    i, j, _, x, y, _ = tiepoint
    transform = (float(sx), 0.0, float(x - i * sx), 0.0, float(-sy), float(y + j * sy))
    return np.ascontiguousarray(array), BandProfile(f"EPSG:{int(code)}", transform)


def read_band_rasterio(
    source: Path | str | bytes,
    path_label: str,
    patch: str | None = None,
    expected: Expected | None = None,
):
    """``read_band`` through rasterio only (``MemoryFile`` for bytes)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            if isinstance(source, (bytes, bytearray, memoryview)):
                with MemoryFile(bytes(source)) as mem, mem.open() as ds:
                    return _read_dataset(ds, expected, path_label, patch)
            with rasterio.open(source) as ds:
                return _read_dataset(ds, expected, path_label, patch)
    except ImageryInputError:
        raise
    except (RasterioError, ValueError, OSError) as err:
        raise ImageryInputError(
            f"{path_label}: corrupt GeoTIFF (patch {patch}): {err}",
            kind="corrupt-geotiff",
            path=path_label,
            patch=patch,
        ) from err
