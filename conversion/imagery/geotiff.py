"""Decode one single-band BigEarthNet GeoTIFF with rasterio.

``read_band(source, path_label)`` takes a file path or the file's bytes (bytes are
decoded in memory: ``tifffile`` for GeoTIFFs with a plain EPSG geo-reference, else
``rasterio.io.MemoryFile``; archive members never touch the disk) and returns a 2-D array
(``uint16`` S2 / reference map, ``float32`` S1; 120×120, 60×60 or 20×20) plus its ``BandProfile``.

BigEarthNet's band files of one kind share one layout: uncompressed pixels at a fixed offset,
the same tags, the same geo keys; they differ only in the tiepoint (where the patch lies) and
the pixel values. Once tifffile has parsed such a file, ``KNOWN_LAYOUTS`` keeps its layout
(``TiffLayout``), and a later file equal to it in every byte outside the tiepoint value and the
pixels, which tifffile would parse exactly alike, is read from its bytes without parsing it again:
its own tiepoint gives its geo-reference, its own bytes its pixels.
"""

from __future__ import annotations

import io
import struct
import threading
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
    faster); any other file goes through rasterio. Returns ``(array, BandProfile)``; the array
    may be a read-only view of the bytes given (files of a known layout, ``TiffLayout``).
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
    layout = KNOWN_LAYOUTS.find(data)
    if layout is not None:
        return layout.read(data, expected, path_label, patch)
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
            array = np.ascontiguousarray(page.asarray())
            profile = BandProfile(f"EPSG:{int(code)}", pixel_is_area_transform(scale, tiepoint))
            KNOWN_LAYOUTS.learn(tif, page, data, scale, profile, array)
    except ImageryInputError:
        raise
    except (tifffile.TiffFileError, ValueError, KeyError, IndexError, TypeError, zlib.error):
        return None  # rasterio decides (and names the file and patch if it is corrupt)
    return array, profile


def pixel_is_area_transform(scale, tiepoint) -> tuple[float, float, float, float, float, float]:
    """The affine a, b, c, d, e, f of a GeoTIFF's ``ModelPixelScale`` and single
    ``ModelTiepoint`` (pixel-is-area, north up)."""
    sx, sy = scale[:2]
    i, j, _, x, y, _ = tiepoint
    return (float(sx), 0.0, float(x - i * sx), 0.0, float(-sy), float(y + j * sy))


@dataclass(frozen=True)
class TiffLayout:
    """The layout of a single-band GeoTIFF that tifffile parsed and ``read_band_tifffile``
    accepted: ``size`` bytes; pixels ``shape`` of ``dtype`` (file byte order) stored uncompressed
    from offset ``pixels`` on, after every structure byte (``head``, the tiepoint value, ``tail``);
    the ``ModelTiepoint`` value (6 doubles) at offset ``tiepoint``; the CRS and
    ``ModelPixelScale``.

    A file matches when it has ``size`` bytes and equals ``head`` before the tiepoint value,
    ``tail`` from after it to the pixels, and ``after`` behind the pixels. tifffile reads nothing
    else to parse a file, so it would find the same tags, geo keys, shape and dtype in it."""

    size: int
    head: bytes
    tiepoint: int
    tail: bytes
    after: bytes
    pixels: int
    shape: tuple[int, int]
    dtype: np.dtype
    tiepoint_dtype: np.dtype
    crs: str
    scale: tuple[float, ...]

    @property
    def nbytes(self) -> int:
        """Bytes of pixels."""
        return self.shape[0] * self.shape[1] * self.dtype.itemsize

    def matches(self, data: bytes) -> bool:
        start = self.tiepoint + 6 * 8
        return (
            data[: self.tiepoint] == self.head
            and data[start : self.pixels] == self.tail
            and data[self.size - len(self.after) :] == self.after
        )

    def read(
        self, data: bytes, expected: Expected | None, path_label: str, patch: str | None
    ) -> tuple[np.ndarray, BandProfile]:
        """``(array, BandProfile)`` of a matching file (``expected`` checked first); the array is
        a read-only view of ``data`` when the file's byte order is the machine's."""
        native = self.dtype.newbyteorder("=")
        if expected is not None:
            expected.check(self.shape, native, path_label, patch)
        count = self.shape[0] * self.shape[1]
        pixels = np.frombuffer(data, self.dtype, count, self.pixels).reshape(self.shape)
        tiepoint = np.frombuffer(data, self.tiepoint_dtype, 6, self.tiepoint).tolist()
        array = pixels if self.dtype == native else pixels.astype(native)
        return array, BandProfile(self.crs, pixel_is_area_transform(self.scale, tiepoint))


class KnownLayouts:
    """The ``TiffLayout`` of files parsed so far (per process, shared by its threads): up to
    ``max_per_size`` of each file size (e.g. one per UTM zone) and ``max_total`` in all, each
    with at most ``MAX_STRUCTURE_BYTES`` outside its pixels. ``find(data)`` returns the layout
    ``data`` matches."""

    MAX_STRUCTURE_BYTES = 16 << 10  # a BigEarthNet band file has ~400

    def __init__(self, max_per_size: int = 32, max_total: int = 512):
        self.max_per_size = max_per_size
        self.max_total = max_total
        self._by_size: dict[int, tuple[TiffLayout, ...]] = {}
        self._count = 0
        self._lock = threading.Lock()

    def find(self, data: bytes) -> TiffLayout | None:
        for layout in self._by_size.get(len(data), ()):
            if layout.matches(data):
                return layout
        return None

    def learn(self, tif, page, data: bytes, scale, profile: BandProfile, array) -> None:
        """Keep the layout of ``data``, parsed by tifffile as ``tif``/``page`` into ``array`` and
        ``profile``, when its pixels are stored uncompressed after every structure byte, and when
        reading ``data`` through the layout gives exactly ``array`` and ``profile``."""
        try:
            layout = _layout_of(tif, page, data, scale, profile.crs)
        except (struct.error, ValueError, IndexError, TypeError):  # an odd file: no layout
            layout = None
        if layout is None or layout.size - layout.nbytes > self.MAX_STRUCTURE_BYTES:
            return
        again, again_profile = layout.read(data, None, "", None)
        if again_profile != profile or again.dtype != array.dtype or again.shape != array.shape:
            return
        if again.tobytes() != array.tobytes():
            return
        with self._lock:
            known = self._by_size.get(layout.size, ())
            full = len(known) >= self.max_per_size or self._count >= self.max_total
            if not full and layout not in known:
                self._by_size[layout.size] = (*known, layout)
                self._count += 1


def _layout_of(tif, page, data: bytes, scale, crs: str) -> TiffLayout | None:
    """The ``TiffLayout`` of a file tifffile parsed, or None when its pixels are not stored
    uncompressed in one run after every structure byte (the IFD and each tag value)."""
    tiff = tif.tiff
    if not page.is_final or page.dtype is None or len(page.shape) != 2:
        return None
    pixels, nbytes = page.dataoffsets[0], page.nbytes
    if pixels + nbytes > len(data) or 33922 not in page.tags:
        return None
    tiepoint_tag = page.tags[33922]
    tiepoint = tiepoint_tag.valueoffset
    if tiepoint_tag.dtype != 12 or tiepoint_tag.count != 6:  # DOUBLE[6]
        return None
    (tagno,) = struct.unpack_from(tiff.tagnoformat, data, page.offset)
    ifd = (page.offset, page.offset + tiff.tagnosize + tagno * tiff.tagsize + tiff.offsetsize)
    values = [
        (t.valueoffset, t.valueoffset + t.valuebytecount)
        for t in page.tags.values()
        if t.valuebytecount > tiff.tagoffsetthreshold and t is not tiepoint_tag
    ]
    if any(end > pixels for _, end in (ifd, *values)) or tiepoint + 48 > pixels:
        return None
    if any(a < tiepoint + 48 and tiepoint < b for a, b in (ifd, *values)):
        return None  # another structure byte inside the tiepoint value
    return TiffLayout(
        size=len(data),
        head=data[:tiepoint],
        tiepoint=tiepoint,
        tail=data[tiepoint + 48 : pixels],
        after=data[pixels + nbytes :],
        pixels=pixels,
        shape=tuple(page.shape),
        dtype=np.dtype(tif.byteorder + page.dtype.char),
        tiepoint_dtype=np.dtype(tif.byteorder + "f8"),
        crs=crs,
        scale=tuple(scale),
    )


KNOWN_LAYOUTS = KnownLayouts()


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
