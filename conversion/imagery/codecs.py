"""Codec presets of ``imagery.zarr`` (zarr-python built-in codecs only, all lossless).

Measured on the real sample patches (S2 from v2, legacy flat and v1; S1 from v2 and v1), bytes
relative to the raw band bytes of a full S1+S2 sample (``bench/results/imagery.md`` for the
comparison with the LMDB):

* ``default`` — Blosc(zstd, level 3, byte shuffle): ratio ≈ 0.69, fast to write and read.
* ``size`` — uint16 S2 / reference maps: Delta (row predictor, wrapping uint16) + Blosc(zstd 9,
  byte shuffle); float32 S1: Blosc(zstd 9, byte shuffle): ratio ≈ 0.67. The S1 dB floats carry
  ~24 bits of noise per value (measured byte entropies 8.0/8.0/7.7/0.4 bits), so no lossless
  predictor available to zarr (Delta on float32 rounds) lowers S1 below ≈ 0.75.
* ``speed`` — Blosc(lz4hc, level 9, byte shuffle): ≈ 2 % more bytes than ``default`` on the real
  sample patches, decoding about 3.5× faster (≈ 60 µs instead of ≈ 215 µs per S1+S2 patch on one
  core), which is what bounds random ``dataset[i]`` reads (``bench/results/loading.md``).

Each inner chunk is one patch (random access decodes one patch); shards group ``shard_size``
patches along the patch axis.
"""

from __future__ import annotations

import numpy as np
from zarr.codecs import BloscCodec, BytesCodec, Delta

PRESETS: tuple[str, ...] = ("default", "size", "speed")
DEFAULT_PRESET = "default"
DEFAULT_SHARD_SIZE = 256


def codec_kwargs(preset: str, dtype: str) -> dict:
    """``filters``/``serializer``/``compressors`` keyword arguments of ``zarr.create_array``."""
    dt = np.dtype(dtype)
    cname = "zstd"
    if preset == "default":
        filters: list = []
        level = 3
    elif preset == "size":
        filters = [Delta(dtype=dt.str)] if dt.kind == "u" else []
        level = 9
    elif preset == "speed":
        filters, level, cname = [], 9, "lz4hc"
    else:
        raise ValueError(f"unknown codec preset {preset!r}; expected one of {PRESETS}")
    compressor = BloscCodec(cname=cname, clevel=level, shuffle="shuffle", typesize=dt.itemsize)
    return {"filters": filters, "serializer": BytesCodec(), "compressors": [compressor]}


def describe(preset: str) -> dict:
    """JSON-ready description of a preset, for the store attributes."""
    if preset == "speed":
        return {"preset": preset, "uint16": "blosc(lz4hc, 9, shuffle)", "float32": "blosc(lz4hc, 9, shuffle)"}
    return {
        "preset": preset,
        "uint16": "delta(uint16) + blosc(zstd, 9, shuffle)" if preset == "size" else "blosc(zstd, 3, shuffle)",
        "float32": "blosc(zstd, 9, shuffle)" if preset == "size" else "blosc(zstd, 3, shuffle)",
    }
