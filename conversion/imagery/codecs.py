"""Codec presets of ``imagery.zarr`` (zarr-python built-in codecs only, all lossless).

Measured on replicated real sample patches, bytes relative to the LMDB of safetensors the official
loader reads (the raw band bytes + 2.7 %; ``bench/results/imagery.md`` has the codec table):

* ``speed`` (the default) — Blosc(lz4, level 9, bit shuffle): ratio ≈ 0.695 of the LMDB's bytes,
  written faster than ``balanced`` (lz4 encodes at ≈ 1 GB/s per core) and decoded ≈ 3.5× faster
  (≈ 1.7 GB/s per core), which is what bounds random ``dataset[i]`` reads
  (``bench/results/loading.md``). Bit shuffle is what makes lz4 match lz4hc's ratio here; lz4hc
  (byte shuffle) needs level 9 for the same ratio and writes 80× slower.
* ``balanced`` — Blosc(zstd, level 3, byte shuffle): ≈ 3 % fewer bytes (0.674 of the LMDB's),
  writing ≈ 140 MB/s and decoding ≈ 500 MB/s per core.
* ``size`` — uint16 S2 / reference maps: Delta (row predictor, wrapping uint16) + Blosc(zstd 9,
  byte shuffle); float32 S1: Blosc(zstd 9, byte shuffle): ratio ≈ 0.67, slow to write. The S1 dB
  floats carry ~24 bits of noise per value (measured byte entropies 8.0/8.0/7.7/0.4 bits), so no
  lossless predictor available to zarr (Delta on float32 rounds) lowers S1 below ≈ 0.75.

Each inner chunk is one patch (random access decodes one patch); shards group ``shard_size``
patches along the patch axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Preset:
    """Blosc compressor name, level and shuffle, and whether unsigned bands get a Delta filter first."""

    cname: str
    level: int
    delta_unsigned: bool = False
    shuffle: str = "shuffle"  # or "bitshuffle"


PRESET_CODECS: dict[str, Preset] = {
    "speed": Preset("lz4", 9, shuffle="bitshuffle"),
    "balanced": Preset("zstd", 3),
    "size": Preset("zstd", 9, delta_unsigned=True),
}
PRESETS: tuple[str, ...] = tuple(PRESET_CODECS)
DEFAULT_PRESET = "speed"
DEFAULT_SHARD_SIZE = 256


def _preset(name: str) -> Preset:
    try:
        return PRESET_CODECS[name]
    except KeyError:
        raise ValueError(f"unknown codec preset {name!r}; expected one of {PRESETS}") from None


def codec_kwargs(preset: str, dtype: str) -> dict:
    """``filters``/``serializer``/``compressors`` keyword arguments of ``zarr.create_array``."""
    from zarr.codecs import BloscCodec, BytesCodec, Delta

    p, dt = _preset(preset), np.dtype(dtype)
    filters = [Delta(dtype=dt.str)] if p.delta_unsigned and dt.kind == "u" else []
    compressor = BloscCodec(cname=p.cname, clevel=p.level, shuffle=p.shuffle, typesize=dt.itemsize)
    return {"filters": filters, "serializer": BytesCodec(), "compressors": [compressor]}


def describe(preset: str) -> dict:
    """JSON-ready description of a preset, for the store attributes."""
    p = _preset(preset)
    blosc = f"blosc({p.cname}, {p.level}, {p.shuffle})"
    return {
        "preset": preset,
        "uint16": f"delta(uint16) + {blosc}" if p.delta_unsigned else blosc,
        "float32": blosc,
    }
