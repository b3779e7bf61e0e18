"""Where a geo-referenced GeoTIFF lies on Earth: the WGS84 latitude and longitude of its centre.

``geotiff_centre(path)`` reads the file's CRS and affine transform with rasterio and projects the
centre of its pixel grid to EPSG:4326 with ``rasterio.warp.transform``. ``sample_patch_centres()``
gives it for every S2 sample patch shipped in ``conversion/samples`` (from its 10 m band B02), by
``patch_id``: the coordinates of the sample annotation fixtures.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import rasterio
from rasterio.warp import transform as warp_transform

WGS84 = "EPSG:4326"
CENTRE_BAND = "B02"


def geotiff_centre(path: Path | str) -> tuple[float, float]:
    """``(latitude, longitude)`` in degrees (WGS84) of the centre of the GeoTIFF ``path``."""
    with rasterio.open(path) as ds:
        if ds.crs is None:
            raise ValueError(f"{path}: no CRS, the file is not geo-referenced")
        x, y = ds.transform @ (ds.width / 2, ds.height / 2)
        (lon,), (lat,) = warp_transform(ds.crs, WGS84, [x], [y])
    return float(lat), float(lon)


def sample_patch_centres(metadata: Path | str) -> dict[str, tuple[float, float]]:
    """``{patch_id: (latitude, longitude)}`` of the S2 sample patches, from their B02 GeoTIFFs
    (v2, pre-release flat and v1.0 folders; v1.0 names mapped through ``metadata``'s
    ``s2v1_name``)."""
    from bigearthnet_txt.conversion.imagery.sources import iter_folder
    from bigearthnet_txt.conversion.sample_data import SAMPLE_IMAGERY_SOURCES

    table = pq.read_table(metadata, columns=["patch_id", "s2v1_name"])
    patch_id_of = dict(
        zip(table["s2v1_name"].to_pylist(), table["patch_id"].to_pylist(), strict=True)
    )
    centres = {}
    for source in SAMPLE_IMAGERY_SOURCES["s2"]:
        for patch in iter_folder(source):
            if CENTRE_BAND in patch.files:
                pid = patch_id_of.get(patch.name, patch.name)
                centres[pid] = geotiff_centre(patch.files[CENTRE_BAND])
    return centres
