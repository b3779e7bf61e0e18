"""Imagery conversion: BigEarthNet GeoTIFFs (archives or folders) to ``imagery.zarr`` + ``patches.parquet``.

Modules, one job each:

* ``errors`` — ``ImageryInputError``, the one error type for bad input (names the file/patch);
* ``geotiff`` — decodes one band GeoTIFF (path or bytes) with rasterio;
* ``sources`` — walks folders (v2, legacy flat, v1) and streams ``.tar.zst`` archives, yielding the
  band files of one patch at a time;
* ``metadata`` — reads ``metadata.parquet`` and the annotation splits, and plans the patch order;
* ``codecs`` — the codec presets of the store;
* ``store_writer`` — creates the Zarr group, writes whole shards atomically, records progress;
* ``checksums`` — md5 verification of the published archives;
* ``convert`` — the orchestration (``convert_imagery``) and its command-line flags.
"""
