"""Imagery conversion: BigEarthNet GeoTIFFs (archives or folders) to ``imagery.zarr`` and
``patches.parquet``.

Modules, one job each:

* ``errors`` — ``ImageryInputError``, the one error type for bad input (names the file/patch);
* ``geotiff`` — decodes one band GeoTIFF (path or bytes) with tifffile or rasterio (files of a
  layout tifffile has parsed are read without parsing them again);
* ``sources`` — walks folders (v2, legacy flat, v1) and streams ``.tar.zst`` archives, yielding the
  band files of one patch at a time;
* ``metadata`` — reads ``metadata.parquet`` and the annotation splits, and plans the patch order;
* ``codecs`` — the codec presets of the store;
* ``listing`` — the patches of any source (archive, folder, folder URL) and their bytes;
* ``passes`` — the three passes (S2, S1, reference maps) and the decoding of one patch;
* ``assembler`` — one shard's block and progress record (statistics, source hash);
* ``shard_task`` — the task writing one shard, run by either engine;
* ``executors`` — where shard tasks run locally (this process or worker processes);
* ``pass_runner`` — the one pass runner: resume check, shard jobs, bad input, integrity;
* ``store_writer`` — creates the Zarr group, writes whole shards atomically, records progress;
* ``finalize`` — patch table, skip-bad report and final store attributes;
* ``checksums`` — md5 verification of the published archives;
* ``convert`` — the orchestration (``convert_imagery`` with an ``ImageryConfig``);
* ``arguments`` — its command-line flags and ``main``
  (``python -m bigearthnet_txt.conversion.imagery``).
"""
