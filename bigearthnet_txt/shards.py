"""Direct access to the shard files of ``imagery.zarr`` (Zarr v3 ``sharding_indexed``), for speed.

zarr-python spends about a millisecond of Python per inner chunk; the imagery store has one inner
chunk per patch, so reading or writing one patch at a time through it is slow. ``ShardLayout``
reads an array's ``zarr.json`` and, for the layouts this project writes (shards along the patch
axis only, inner chunks of one patch, index at the end with ``bytes`` + ``crc32c``, inner codecs
among ``numcodecs.delta``, ``bytes`` (little endian), ``blosc`` and ``zstd``), encodes and decodes
shard files itself, byte-compatible with zarr-python (which reads and writes the same files).

* ``ShardLayout.load(array_dir)`` → ``ShardLayout`` or ``None`` when the layout is not one of those.
* ``layout.encode_shard(block)`` → the bytes of one shard file (``block``: ``[shard_size, *chunk]``)
  or ``None`` when every chunk equals the fill value (zarr then stores no file).
* ``layout.read_rows(rows)`` → ``ndarray[len(rows), *chunk]`` for sorted, unique patch rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import google_crc32c
import numcodecs
import numpy as np

EMPTY = np.uint64(2**64 - 1)
SUPPORTED_INNER = {"numcodecs.delta", "bytes", "blosc", "zstd"}
_BLOSC_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


class ShardLayout:
    """Shard encoding of one array directory (see module docstring)."""

    def __init__(self, array_dir: Path, meta: dict):
        self.array_dir = Path(array_dir)
        self.shape = tuple(meta["shape"])
        self.dtype = np.dtype(meta["data_type"]).newbyteorder("<")
        self.shard_shape = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        sharding = meta["codecs"][0]["configuration"]
        self.chunk_shape = tuple(sharding["chunk_shape"])
        self.shard_size = self.shard_shape[0]
        fill = meta["fill_value"]
        self.fill_value = np.array(float(fill) if isinstance(fill, str) else fill, dtype=self.dtype)
        self.separator = meta["chunk_key_encoding"].get("configuration", {}).get("separator", "/")
        self.steps: list[tuple[str, object]] = []
        for codec in sharding["codecs"]:
            name, config = codec["name"], codec.get("configuration", {})
            if name == "numcodecs.delta":
                self.steps.append(("delta", numcodecs.Delta(dtype=config["dtype"], astype=config.get("astype"))))
            elif name == "blosc":
                self.steps.append(("bytes", numcodecs.Blosc(
                    cname=config["cname"], clevel=config["clevel"],
                    shuffle=_BLOSC_SHUFFLE[config["shuffle"]], blocksize=config.get("blocksize", 0),
                )))  # fmt: skip
            elif name == "zstd":
                self.steps.append(("bytes", numcodecs.Zstd(level=config.get("level", 0))))
        self.chunk_items = int(np.prod(self.chunk_shape))

    @classmethod
    def load(cls, array_dir: Path | str) -> ShardLayout | None:
        """The layout of ``array_dir/zarr.json``, or None when this module does not handle it."""
        meta = json.loads((Path(array_dir) / "zarr.json").read_text())
        codecs = meta.get("codecs", [])
        if len(codecs) != 1 or codecs[0]["name"] != "sharding_indexed":
            return None
        config = codecs[0]["configuration"]
        inner = [c["name"] for c in config["codecs"]]
        index = [c["name"] for c in config["index_codecs"]]
        shard_shape = meta["chunk_grid"]["configuration"]["chunk_shape"]
        if (
            not set(inner) <= SUPPORTED_INNER
            or any(c.get("configuration", {}).get("endian", "little") != "little" for c in config["codecs"] + config["index_codecs"])
            or index != ["bytes", "crc32c"]
            or config.get("index_location", "end") != "end"
            or config["chunk_shape"][0] != 1
            or list(config["chunk_shape"][1:]) != list(meta["shape"][1:])
            or list(shard_shape[1:]) != list(meta["shape"][1:])
            or meta["chunk_key_encoding"]["name"] != "default"
        ):
            return None
        return cls(Path(array_dir), meta)

    # -- paths ------------------------------------------------------------------------------------

    def shard_path(self, shard: int) -> Path:
        key = self.separator.join(["c", str(shard)] + ["0"] * (len(self.shape) - 1))
        return self.array_dir / key

    # -- encoding ---------------------------------------------------------------------------------

    def _is_fill(self, chunk: np.ndarray) -> bool:
        if self.dtype.kind == "f" and np.isnan(self.fill_value):
            return bool(np.isnan(chunk).all())
        return bool((chunk == self.fill_value).all())

    def encode_chunk(self, chunk: np.ndarray) -> bytes:
        data = np.ascontiguousarray(chunk, dtype=self.dtype)
        for kind, codec in self.steps:
            if kind == "delta":
                data = codec.encode(data)
        buf = np.ascontiguousarray(data).view(np.uint8).tobytes() if isinstance(data, np.ndarray) else bytes(data)
        for kind, codec in self.steps:
            if kind == "bytes":
                buf = bytes(codec.encode(np.frombuffer(buf, dtype=self.dtype)))
        return buf

    def encode_shard(self, block: np.ndarray, map_fn=map) -> bytes | None:
        """Bytes of one shard file for ``block`` [shard_size, *chunk]; None if all fill value.

        ``map_fn`` maps ``encode_chunk`` over the chunks (e.g. a thread pool's ``map``)."""
        index = np.full((self.shard_size, 2), EMPTY, dtype="<u8")
        parts: list[bytes] = []
        offset = 0
        rows = [row for row in range(self.shard_size) if not self._is_fill(block[row])]
        for row, encoded in zip(rows, map_fn(self.encode_chunk, [block[r] for r in rows]), strict=True):
            index[row] = (offset, len(encoded))
            parts.append(encoded)
            offset += len(encoded)
        if not parts:
            return None
        index_bytes = index.tobytes()
        crc = np.uint32(google_crc32c.value(index_bytes)).astype("<u4").tobytes()
        return b"".join(parts) + index_bytes + crc

    # -- decoding ---------------------------------------------------------------------------------

    def decode_chunk(self, buf: bytes) -> np.ndarray:
        data: object = buf
        for kind, codec in reversed(self.steps):
            if kind == "bytes":
                data = codec.decode(data)
        array = np.frombuffer(bytes(data) if not isinstance(data, np.ndarray) else data, dtype=self.dtype)
        for kind, codec in reversed(self.steps):
            if kind == "delta":
                array = np.asarray(codec.decode(array)).view(self.dtype)
        return array.reshape(self.chunk_shape[1:])

    def read_index(self, fd: int, size: int) -> np.ndarray:
        nbytes = self.shard_size * 16 + 4
        raw = os.pread(fd, nbytes, size - nbytes)
        if np.uint32(google_crc32c.value(raw[:-4])).astype("<u4").tobytes() != raw[-4:]:
            raise ValueError(f"{self.array_dir}: shard index checksum mismatch")
        return np.frombuffer(raw[:-4], dtype="<u8").reshape(self.shard_size, 2)

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Decode patch rows (sorted, unique, in range) into ``[len(rows), *chunk]``."""
        out = np.empty((len(rows), *self.chunk_shape[1:]), dtype=self.dtype)
        shards = rows // self.shard_size
        for shard in np.unique(shards):
            positions = np.flatnonzero(shards == shard)
            path = self.shard_path(int(shard))
            if not path.is_file():
                out[positions] = self.fill_value
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                index = self.read_index(fd, os.fstat(fd).st_size)
                for pos in positions:
                    offset, nbytes = index[rows[pos] - shard * self.shard_size]
                    if offset == EMPTY:
                        out[pos] = self.fill_value
                    else:
                        out[pos] = self.decode_chunk(os.pread(fd, int(nbytes), int(offset)))
            finally:
                os.close(fd)
        return out
