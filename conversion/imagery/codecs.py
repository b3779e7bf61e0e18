"""Codec presets of ``imagery.zarr`` (zarr-python built-in codecs only, all lossless).

Measured on replicated real sample patches, bytes relative to the LMDB of safetensors the official
loader reads (the raw band bytes + 2.7 %; ``bench/results/imagery.md`` has the store sizes,
``bench/results/codecs.md`` the per-band-file codec table, ``bench/results/reads.md`` the reads):

* ``speed`` (the default) — Blosc(lz4hc, level 6, byte shuffle) for every array. The same size as
  ``write`` (≈ 0.69 of the LMDB's bytes) and decoded ≈ 1.6× faster (byte shuffle undoes in a
  fraction of the time bit shuffle takes, and lz4hc's longer matches decode faster than lz4's),
  which is what bounds reading: a patch is decoded at every epoch, written once. Writing costs
  ≈ 3 ms more per patch than ``write``.
* ``write`` — S2 and reference maps: Blosc(lz4, level 9, bit shuffle); S1: Blosc(lz4hc, level 6,
  byte shuffle): the fastest to convert at the same size (for uint16, bit shuffle lets lz4, ≈ 1 GB/s
  to write, match lz4hc's ratio), decoded ≈ 1.6× slower than ``speed``.
* ``balanced`` — Blosc(zstd, level 3, byte shuffle): ≈ 3 % fewer bytes, writing ≈ 140 MB/s and
  decoding ≈ 500 MB/s per core.
* ``size`` — uint16 S2 / reference maps: Delta (row predictor, wrapping uint16) + Blosc(zstd 9,
  byte shuffle); float32 S1: Blosc(zstd 9, byte shuffle): ratio ≈ 0.65, slow to write. The S1 dB
  floats carry ~24 bits of noise per value (measured byte entropies 8.0/8.0/7.7/0.4 bits), so no
  lossless predictor available to zarr (Delta on float32 rounds) lowers S1 below ≈ 0.75.
* ``read`` — no compression (the raw little-endian arrays, like the LMDB's safetensors): decoding a
  patch is one memory copy, so random reads are bound by the copy, not the decoder; ≈ 0.97 of the
  LMDB's bytes (1.4× the ``speed`` preset's). For users who trade disk for read speed.

Each inner chunk is one patch (random access decodes one patch); shards group ``shard_size``
patches along the patch axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Blosc:
    """One Blosc compressor setting: name, level and shuffle (``"shuffle"`` or ``"bitshuffle"``)."""

    cname: str
    level: int
    shuffle: str = "shuffle"

    def __str__(self) -> str:
        return f"blosc({self.cname}, {self.level}, {self.shuffle})"


@dataclass(frozen=True)
class Preset:
    """The compressor of the unsigned (S2, reference map) and float (S1) arrays, and whether the
    unsigned ones get a Delta filter first."""

    unsigned: Blosc | None  # None: stored uncompressed
    floating: Blosc | None
    delta_unsigned: bool = False

    def compressor(self, dtype: np.dtype) -> Blosc | None:
        return self.floating if dtype.kind == "f" else self.unsigned


PRESET_CODECS: dict[str, Preset] = {
    "speed": Preset(Blosc("lz4hc", 6), Blosc("lz4hc", 6)),
    "write": Preset(Blosc("lz4", 9, "bitshuffle"), Blosc("lz4hc", 6)),
    "balanced": Preset(Blosc("zstd", 3), Blosc("zstd", 3)),
    "size": Preset(Blosc("zstd", 9), Blosc("zstd", 9), delta_unsigned=True),
    "read": Preset(None, None),
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
    b = p.compressor(dt)
    if b is None:
        return {"filters": filters, "serializer": BytesCodec(), "compressors": None}
    compressor = BloscCodec(cname=b.cname, clevel=b.level, shuffle=b.shuffle, typesize=dt.itemsize)
    return {"filters": filters, "serializer": BytesCodec(), "compressors": [compressor]}


def describe(preset: str) -> dict:
    """JSON-ready description of a preset, for the store attributes."""
    p = _preset(preset)
    return {
        "preset": preset,
        "uint16": f"delta(uint16) + {p.unsigned}"
        if p.delta_unsigned
        else str(p.unsigned or "none"),
        "float32": str(p.floating or "none"),
    }
