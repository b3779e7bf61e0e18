"""Direct access to the shard files of ``imagery.zarr`` (Zarr v3 ``sharding_indexed``), for speed.

Why a hand-written codec: zarr-python spends about a millisecond of Python per inner chunk, and the
imagery store has one inner chunk per patch, so reading a few random patches at a time (what
training does) through it is slow. Random batches of 1 / 64 / 256 patches of the four arrays,
identical outputs, one process (``bench/results/reads.md``): zarr-python's ``oindex`` reads at
0.01x / 0.01x / 0.01x of this module, tensorstore at 0.20x / 0.59x / 0.53x with one thread and
0.20x / 0.62x / 0.69x with two (per CPU-second this module is 2.8x tensorstore at 256);
zarr with the ``zarrs`` codec pipeline measured 0.02-0.24x in an earlier run (not installed here).
``ShardLayout`` reads an array's ``zarr.json`` and, for the layouts this project
writes (shards along the patch axis only, inner chunks of one patch, index at the end with
``bytes`` + ``crc32c``, inner codecs among ``numcodecs.delta``, ``bytes`` (little endian),
``blosc`` and ``zstd``), encodes and decodes shard files itself, byte-compatible with zarr-python
(which reads and writes the same files; ``tests/test_shard_reads.py`` cross-checks every preset).

* ``ShardLayout.load(array_dir, fs=None)`` → ``ShardLayout`` or ``None`` when the layout is not
  one of those. ``array_dir`` is a local directory (``fs=None``: shard files memory-mapped) or a
  path in the fsspec filesystem ``fs`` (the shard index and the wanted chunks read by byte ranges).
* ``layout.encode_shard(block)`` → the bytes of one shard file (``block``: ``[shard_size, *chunk]``)
  or ``None`` when every chunk equals the fill value (zarr then stores no file);
  ``encode_shard_parts`` gives them as the buffers to write in turn (no joined copy).
* ``layout.read_rows(rows, pool=None, out=None)`` → ``ndarray[len(rows), *chunk]`` for patch rows
  in any order (repeats allowed), each decoded straight into its place; ``pool`` decodes on
  threads; ``out``: the array to decode into; a new result lives in recycled memory
  (:mod:`bigearthnet_txt.recycled`).
* ``layout.read_each(rows, pool=None)`` → a list of read-only ``chunk`` arrays, one per row, each
  in its own memory (so that one row kept alive does not keep a whole batch alive);
  ``layout.read_row(row)`` → one such array.

A layout keeps the index of every shard it has read (``MAX_CACHED_INDEXES`` at most, 16 bytes per
patch each) and, locally, up to ``MAX_OPEN_FILES`` shard files memory-mapped (read-only, so forked
workers may share them; chunks are decompressed straight from the mapping into the result; the
least recently used mapping goes first), so later reads of a shard cost only the decoding. The
mappings come from :data:`bigearthnet_txt.mapped_files.MAPPED`, one per file for the whole process,
so every store over the same folder shares them. Mapping a shard again costs a page fault per
64 kB read from it: with 40 shards per array and room for 32, random reads ran at half speed
(``bench/results/reads.md``), hence room for every shard of the full release. Shard files are
expected not to change while a layout is in use (a finished store).
"""

from __future__ import annotations

import errno
import functools
import json
import mmap
import struct
from concurrent.futures import wait
from pathlib import Path

import blosc as pyblosc
import google_crc32c
import numcodecs
import numpy as np
from blosc import blosc_extension as blosc_c

from bigearthnet_txt import recycled
from bigearthnet_txt.mapped_files import MAPPED

EMPTY = np.uint64(2**64 - 1)
EMPTY_OFFSET = 2**64 - 1  # EMPTY as a Python int (index rows read with .tolist())
EMPTY_SPAN = (EMPTY_OFFSET, 0)
SUPPORTED_INNER = {"numcodecs.delta", "bytes", "blosc", "zstd"}
_BLOSC_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
MAX_CACHED_INDEXES = 4096
MAX_OPEN_FILES = 4096  # per local layout (the release has about 2,150 shards per array)
_BLOSC_NBYTES = struct.Struct("<I").unpack_from  # a Blosc header's uncompressed size, bytes 4-7

# Blosc chunks are decompressed through python-blosc's C functions: about 0.6 µs per call against
# 3 µs for ``numcodecs.blosc.decompress``, whose Python checks cost more than decompressing a small
# chunk (four chunks per patch). One Blosc thread per call, the GIL released during it: parallel
# decoding is ``decode_threads``' thread pool.
pyblosc.set_nthreads(1)
pyblosc.set_releasegil(True)


class ShardLayout:
    """Shard encoding of one array directory (see module docstring)."""

    def __init__(self, array_dir: Path | str, meta: dict, fs=None):
        self.fs = fs
        self.array_dir = Path(array_dir) if fs is None else str(array_dir).rstrip("/")
        self._indexes: dict[int, np.ndarray | None] = {}
        self._spans: dict[int, list[list[int]]] = {}
        self._maps: dict[int, mmap.mmap] = {}
        # read_row's shards: a view of the mapping kept with its spans (dropped with the mapping)
        self._views: dict[int, tuple[memoryview, list]] = {}
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
                self.steps.append(
                    ("delta", numcodecs.Delta(dtype=config["dtype"], astype=config.get("astype")))
                )
            elif name == "blosc":
                self.steps.append(("bytes", numcodecs.Blosc(
                    cname=config["cname"], clevel=config["clevel"],
                    shuffle=_BLOSC_SHUFFLE[config["shuffle"]], blocksize=config.get("blocksize", 0),
                )))  # fmt: skip
            elif name == "zstd":
                self.steps.append(("bytes", numcodecs.Zstd(level=config.get("level", 0))))
        self.chunk_items = int(np.prod(self.chunk_shape))
        self.chunk_nbytes = self.chunk_items * self.dtype.itemsize
        self._blosc_only = len(self.steps) == 1 and isinstance(self.steps[0][1], numcodecs.Blosc)
        # a local file whose chunks are one Blosc buffer or raw bytes: read_row's direct path
        self._plain_local = fs is None and (self._blosc_only or not self.steps)

    @classmethod
    def load(cls, array_dir: Path | str, fs=None, meta: dict | None = None) -> ShardLayout | None:
        """The layout of ``array_dir/zarr.json`` (or of ``meta``, its parsed content), or None when
        this module does not handle it; ``fs``: the fsspec filesystem holding ``array_dir``."""
        if meta is None:
            if fs is None:
                meta = json.loads((Path(array_dir) / "zarr.json").read_text())
            else:
                meta = json.loads(fs.cat_file(f"{str(array_dir).rstrip('/')}/zarr.json"))
        codecs = meta.get("codecs", [])
        if len(codecs) != 1 or codecs[0]["name"] != "sharding_indexed":
            return None
        config = codecs[0]["configuration"]
        inner = [c["name"] for c in config["codecs"]]
        index = [c["name"] for c in config["index_codecs"]]
        shard_shape = meta["chunk_grid"]["configuration"]["chunk_shape"]
        if (
            not set(inner) <= SUPPORTED_INNER
            or any(
                c.get("configuration", {}).get("endian", "little") != "little"
                for c in config["codecs"] + config["index_codecs"]
            )
            or index != ["bytes", "crc32c"]
            or config.get("index_location", "end") != "end"
            or config["chunk_shape"][0] != 1
            or list(config["chunk_shape"][1:]) != list(meta["shape"][1:])
            or list(shard_shape[1:]) != list(meta["shape"][1:])
            or meta["chunk_key_encoding"]["name"] != "default"
        ):
            return None
        return cls(array_dir, meta, fs)

    # -- paths ------------------------------------------------------------------------------------

    def shard_key(self, shard: int) -> str:
        """The key of shard ``shard`` relative to the array directory, e.g. ``c/3/0/0/0``."""
        return self.separator.join(["c", str(shard)] + ["0"] * (len(self.shape) - 1))

    def shard_path(self, shard: int) -> Path | str:
        """The shard file: a ``Path`` for a local layout, a path of ``fs`` otherwise."""
        if self.fs is None:
            return self.array_dir / self.shard_key(shard)
        return f"{self.array_dir}/{self.shard_key(shard)}"

    # -- encoding ---------------------------------------------------------------------------------

    def _is_fill(self, chunk: np.ndarray) -> bool:
        first = chunk.flat[0]  # a chunk of data seldom starts with the fill value: decided at once
        if self.dtype.kind == "f" and np.isnan(self.fill_value):
            return bool(np.isnan(first)) and bool(np.isnan(chunk).all())
        return bool(first == self.fill_value) and bool((chunk == self.fill_value).all())

    def encode_chunk(self, chunk: np.ndarray) -> bytes | memoryview:
        """The encoded bytes of one chunk (without codecs: a view of ``chunk``'s memory, or of a
        little-endian contiguous copy)."""
        data = np.ascontiguousarray(chunk, dtype=self.dtype)
        for kind, codec in self.steps:
            if kind == "delta":
                data = codec.encode(data)
        flat = (
            np.ascontiguousarray(data).reshape(-1).view(np.uint8)
            if isinstance(data, np.ndarray)
            else np.frombuffer(bytes(data), dtype=np.uint8)
        )
        buf: bytes | memoryview = memoryview(flat)
        for kind, codec in self.steps:
            if kind == "bytes":
                buf = bytes(codec.encode(np.frombuffer(buf, dtype=self.dtype)))
        return buf

    def encode_shard(self, block: np.ndarray, map_fn=map) -> bytes | None:
        """Bytes of one shard file for ``block`` [shard_size, *chunk]; None if all fill value.

        ``map_fn`` maps ``encode_chunk`` over the chunks (e.g. a thread pool's ``map``)."""
        parts = self.encode_shard_parts(block, map_fn)
        return None if parts is None else b"".join(parts)

    def encode_shard_parts(self, block: np.ndarray, map_fn=map) -> list[bytes | memoryview] | None:
        """``encode_shard`` as the buffers to write one after the other (chunks without codecs
        are views of ``block``: write them before changing it); None if all fill value."""
        index = np.full((self.shard_size, 2), EMPTY, dtype="<u8")
        parts: list[bytes | memoryview] = []
        offset = 0
        rows = [row for row in range(self.shard_size) if not self._is_fill(block[row])]
        for row, encoded in zip(
            rows, map_fn(self.encode_chunk, [block[r] for r in rows]), strict=True
        ):
            size = encoded.nbytes if isinstance(encoded, memoryview) else len(encoded)
            index[row] = (offset, size)
            parts.append(encoded)
            offset += size
        if not parts:
            return None
        index_bytes = index.tobytes()
        crc = np.uint32(google_crc32c.value(index_bytes)).astype("<u4").tobytes()
        return [*parts, index_bytes + crc]

    # -- decoding ---------------------------------------------------------------------------------

    def decode_chunk(self, buf: bytes) -> np.ndarray:
        """The chunk ``chunk_shape[1:]`` (``dtype``) encoded in ``buf``."""
        data: object = buf
        for kind, codec in reversed(self.steps):
            if kind == "bytes":
                data = codec.decode(data)
        array = np.frombuffer(
            bytes(data) if not isinstance(data, np.ndarray) else data, dtype=self.dtype
        )
        for kind, codec in reversed(self.steps):
            if kind == "delta":
                array = np.asarray(codec.decode(array)).view(self.dtype)
        return array.reshape(self.chunk_shape[1:])

    def decode_into(self, buf: bytes, out: np.ndarray) -> None:
        """Decode ``buf`` into ``out`` (C-contiguous, ``chunk_shape[1:]``, ``dtype``); one
        decompression straight into ``out`` when the inner codecs are one compressor."""
        if self._blosc_only:
            if not out.flags.c_contiguous or out.nbytes != self.chunk_nbytes:
                raise ValueError(f"out must be a C-contiguous {self.chunk_shape[1:]} array")
            self._check_blosc(buf)
            blosc_c.decompress_ptr(buf, out.ctypes.data)
        elif len(self.steps) == 1 and self.steps[0][0] == "bytes":
            self.steps[0][1].decode(buf, out=out)
        elif not self.steps:
            self._check_raw(buf)
            out[...] = np.frombuffer(buf, dtype=self.dtype).reshape(out.shape)
        else:
            out[...] = self.decode_chunk(buf)

    def _check_raw(self, buf) -> None:
        """ValueError unless uncompressed chunk ``buf`` holds exactly one chunk's bytes."""
        if len(buf) != self.chunk_nbytes:
            raise ValueError(
                f"{self.array_dir}: a raw chunk of {len(buf)} bytes, expected "
                f"{self.chunk_nbytes} (a damaged shard file?)"
            )

    def _check_blosc(self, buf) -> None:
        """ValueError unless Blosc chunk ``buf`` decodes to exactly one chunk's bytes (checked
        before decompressing into memory of that size)."""
        if len(buf) < 16 or _BLOSC_NBYTES(buf, 4)[0] != self.chunk_nbytes:
            got = _BLOSC_NBYTES(buf, 4)[0] if len(buf) >= 16 else None
            raise ValueError(
                f"{self.array_dir}: a Blosc chunk of {len(buf)} bytes declares {got} decoded "
                f"bytes, expected {self.chunk_nbytes} (a damaged shard file?)"
            )

    def parse_index(self, raw: bytes) -> np.ndarray:
        """uint64 ``[shard_size, 2]`` (offset, nbytes) of the ``shard_size*16 + 4`` index bytes."""
        if np.uint32(google_crc32c.value(raw[:-4])).astype("<u4").tobytes() != raw[-4:]:
            raise ValueError(f"{self.array_dir}: shard index checksum mismatch")
        return np.frombuffer(raw[:-4], dtype="<u8").reshape(self.shard_size, 2)

    def _remember(self, shard: int, index: np.ndarray | None) -> None:
        if len(self._indexes) >= MAX_CACHED_INDEXES:
            self._indexes.clear()
            self._spans.clear()
            self._views.clear()
        self._indexes[shard] = index
        if index is not None:
            self._spans[shard] = index.tolist()  # [offset, nbytes] as Python ints, fast to index

    def read_rows(self, rows: np.ndarray, pool=None, out: np.ndarray | None = None) -> np.ndarray:
        """Decode patch rows (any order, repeats allowed, in range) into ``[len(rows), *chunk]``.

        Each row is decoded straight into its place in the result (no reordering copy); a repeated
        row is decoded once and copied. ``pool``: a ``concurrent.futures`` executor; the chunks of
        a local read are split into one contiguous group per worker and decoded on its threads
        (the compressors release the GIL). None: decoded in this thread. ``out``: the destination,
        a C-contiguous writeable ``ndarray[len(rows), *chunk]`` of ``dtype``, returned; None: a
        new array in recycled memory.
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) == 1 and out is None and self._plain_local:
            return self.read_row(int(rows[0]), writeable=True)[None]
        shape = (len(rows), *self.chunk_shape[1:])
        if out is None:
            out = recycled.empty(shape, self.dtype)
        elif not (
            isinstance(out, np.ndarray) and out.shape == shape and out.dtype == self.dtype
            and out.flags.c_contiguous and out.flags.writeable
        ):  # fmt: skip
            raise ValueError(f"out must be a C-contiguous writeable {self.dtype} array of {shape}")
        if len(rows) == 1:
            row = int(rows[0])
            shard = row // self.shard_size
            if self.fs is None:
                self._read_local(shard, [(row, 0)], out)
            else:
                self._read_remote(shard, rows, [0], out)
            return out
        if self.fs is not None:
            return self._read_rows_remote(rows, out)

        def fill(pos: int) -> None:
            out[pos] = self.fill_value

        repeats = self._decode_local(
            rows, pool, functools.partial(self._decode_jobs, out=out), fill
        )
        for pos, seen in repeats:
            out[pos] = out[seen]
        return out

    def read_row(self, row: int, writeable: bool = False) -> np.ndarray:
        """Row ``row`` (in range) as a ``chunk`` array in memory of its own, read-only unless
        ``writeable``. For a local layout whose chunks are one Blosc buffer or raw bytes it is
        decompressed (or copied) straight into that memory, with no destination to allocate and
        address; otherwise through :meth:`read_each`."""
        if not self._plain_local:
            value = self.read_each(np.array([row]))[0]
            return value.copy() if writeable else value
        shard = row // self.shard_size
        opened = self._views.get(shard)
        if opened is None:
            opened = self._open_local(shard)
            if opened[0] is not None:
                self._views[shard] = opened
        view, spans = opened
        offset, nbytes = spans[row - shard * self.shard_size] if view is not None else EMPTY_SPAN
        if offset == EMPTY_OFFSET:
            value = np.full(self.chunk_shape[1:], self.fill_value)
            value.flags.writeable = writeable
            return value
        return self._own_array(view[offset : offset + nbytes], writeable)

    def _own_array(self, chunk, writeable: bool = False) -> np.ndarray:
        """Encoded ``chunk`` of a layout whose chunks are one Blosc buffer or raw bytes
        (``_plain_local``), checked, then decompressed (or copied) into a ``chunk`` array of its
        own, read-only unless ``writeable``."""
        if self._blosc_only:
            self._check_blosc(chunk)
            data = blosc_c.decompress(chunk, writeable)  # bytearray or bytes
        else:
            self._check_raw(chunk)
            data = bytearray(chunk) if writeable else bytes(chunk)
        return np.ndarray(self.chunk_shape[1:], self.dtype, data)  # positional: less to parse

    def read_each(self, rows: np.ndarray, pool=None) -> list[np.ndarray]:
        """Like :meth:`read_rows`, but a list of ``len(rows)`` read-only ``chunk`` arrays, each in
        its own memory (a row kept alive keeps only its own chunk alive; a repeated row is a
        copy)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if self.fs is not None:  # a batch read, each row copied out of it into its own memory
            values = [row.copy() for row in self.read_rows(rows, pool)]
        else:
            values = [None] * len(rows)

            def fill(pos: int) -> None:
                values[pos] = np.full(self.chunk_shape[1:], self.fill_value)

            decode = functools.partial(self._decode_each, out=values)
            for pos, seen in self._decode_local(rows, pool, decode, fill):
                values[pos] = values[seen].copy()
        for value in values:
            value.flags.writeable = False
        return values

    def _decode_local(self, rows: np.ndarray, pool, decode, fill) -> list[tuple[int, int]]:
        """Decode the first occurrence of each of ``rows`` (local shards): ``fill(pos)`` for a row
        stored as the fill value, ``decode(jobs)`` for the others (``[(encoded chunk, position)]``
        in the requested order, split into one contiguous group per ``pool`` worker). Returns the
        ``(position, first position)`` of repeated rows."""
        jobs: list[tuple[memoryview, int]] = []
        opened: dict[int, tuple[memoryview | None, list]] = {}
        first_of: dict[int, int] = {}
        repeats: list[tuple[int, int]] = []
        size = self.shard_size
        try:
            for pos, row in enumerate(rows.tolist()):
                seen = first_of.setdefault(row, pos)
                if seen != pos:
                    repeats.append((pos, seen))
                    continue
                shard = row // size
                entry = opened.get(shard)
                if entry is None:
                    entry = opened[shard] = self._open_local(shard)
                view, spans = entry
                offset, nbytes = spans[row - shard * size] if view is not None else EMPTY_SPAN
                if offset == EMPTY_OFFSET:
                    fill(pos)
                else:
                    jobs.append((view[offset : offset + nbytes], pos))
            workers = getattr(pool, "_max_workers", 1) if pool is not None else 1
            if workers > 1 and len(jobs) > 1:
                step = -(-len(jobs) // workers)
                futures = [
                    pool.submit(decode, jobs[i : i + step]) for i in range(0, len(jobs), step)
                ]
                wait(futures)  # every group done before the views are released, even on an error
                for future in futures:
                    future.result()
            else:
                decode(jobs)
        finally:
            for chunk, _ in jobs:
                chunk.release()
            for view, _ in opened.values():
                if view is not None:
                    view.release()
        return repeats

    def _read_rows_remote(self, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``read_rows`` through ``fs``: one shard at a time (range reads of adjacent chunks)."""
        first_of: dict[int, int] = {}
        repeats: list[tuple[int, int]] = []
        by_shard: dict[int, list[int]] = {}
        for pos, row in enumerate(rows.tolist()):
            seen = first_of.setdefault(row, pos)
            if seen != pos:
                repeats.append((pos, seen))
            else:
                by_shard.setdefault(row // self.shard_size, []).append(pos)
        for shard, positions in by_shard.items():
            self._read_remote(shard, rows, positions, out)
        for pos, seen in repeats:
            out[pos][...] = out[seen]
        return out

    def _open_local(self, shard: int) -> tuple[memoryview | None, list]:
        """A view of local shard ``shard`` and its ``[offset, nbytes]`` spans; ``(None, [])`` when
        the shard has no file (every row holds the fill value). The caller releases the view."""
        index = self._indexes.get(shard)
        mapped = None if index is None and shard in self._indexes else self._map_local(shard)
        if mapped is None:
            self._remember(shard, None)
            return None, []
        if index is None:
            nbytes = self.shard_size * 16 + 4
            self._remember(shard, self.parse_index(mapped[len(mapped) - nbytes :]))
        return memoryview(mapped), self._spans[shard]

    def _decode_jobs(self, jobs: list[tuple[memoryview, int]], out: np.ndarray) -> None:
        """Decode each ``(encoded chunk, position)`` into ``out[position]`` (``out`` as checked by
        :meth:`read_rows`)."""
        if not self._blosc_only:
            for chunk, pos in jobs:
                self.decode_into(chunk, out[pos])
            return
        base, step, check = out.ctypes.data, self.chunk_nbytes, self._check_blosc
        for chunk, pos in jobs:
            check(chunk)
            blosc_c.decompress_ptr(chunk, base + pos * step)

    def _decode_each(self, jobs: list[tuple[memoryview, int]], out: list) -> None:
        """Decode each ``(encoded chunk, position)`` into a new array ``out[position]``."""
        if self._plain_local:
            for chunk, pos in jobs:
                out[pos] = self._own_array(chunk)
            return
        for chunk, pos in jobs:
            out[pos] = np.empty(self.chunk_shape[1:], self.dtype)
            self.decode_into(chunk, out[pos])

    def _map_local(self, shard: int) -> mmap.mmap | None:
        """Read-only mapping of local shard ``shard`` (kept, and shared with the process's other
        layouts through :data:`~bigearthnet_txt.mapped_files.MAPPED`), None when it has no file."""
        mapped = self._maps.pop(shard, None)
        if mapped is None:
            while len(self._maps) >= MAX_OPEN_FILES:
                self._let_go_oldest()
            path = str(self.shard_path(shard))
            while True:
                try:
                    mapped = MAPPED.get(path)
                    break
                except OSError as err:  # out of mappings (vm.max_map_count): let go of some
                    if err.errno != errno.ENOMEM or not (self._maps or len(MAPPED)):
                        raise
                    for _ in range((len(self._maps) + 1) // 2):
                        self._let_go_oldest()
                    MAPPED.let_go_oldest((len(MAPPED) + 1) // 2)
            if mapped is None:
                return None
        self._maps[shard] = mapped  # most recently used last
        return mapped

    def _let_go_oldest(self) -> None:
        """Drop this layout's least recently used mapping (unmapped once nothing refers to it)."""
        shard = next(iter(self._maps))
        del self._maps[shard]
        self._views.pop(shard, None)

    def close(self) -> None:
        """Let go of the shard files this layout keeps mapped, here and in the process's shared
        mappings; each is unmapped once no other layout or view refers to it (reads map them
        again as needed)."""
        maps, self._maps, self._views = self._maps, {}, {}
        MAPPED.let_go(str(self.shard_path(shard)) for shard in maps)

    def _read_local(self, shard: int, items: list[tuple[int, int]], out: np.ndarray) -> None:
        """Fill ``out[pos]`` with row ``row`` for each ``(row, pos)`` of ``items`` (rows of local
        shard ``shard``)."""
        view, spans = self._open_local(shard)
        if view is None:
            for _, pos in items:
                out[pos][...] = self.fill_value
            return
        try:
            base = shard * self.shard_size
            for row, pos in items:
                offset, nbytes = spans[row - base]
                if offset == EMPTY_OFFSET:
                    out[pos][...] = self.fill_value
                else:
                    self.decode_into(view[offset : offset + nbytes], out[pos])
        finally:
            view.release()

    def _read_remote(
        self, shard: int, rows: np.ndarray, positions: list[int], out: np.ndarray
    ) -> None:
        """Like ``_read_local`` through ``fs``: one range read for the index (first time only), one
        per run of adjacent chunks."""
        known = shard in self._indexes
        index = self._indexes.get(shard)
        if known and index is None:
            for pos in positions:
                out[pos][...] = self.fill_value
            return
        try:
            f = self.fs.open(self.shard_path(shard), "rb", cache_type="none")
        except FileNotFoundError:
            self._remember(shard, None)
            for pos in positions:
                out[pos][...] = self.fill_value
            return
        with f:
            if index is None:
                nbytes = self.shard_size * 16 + 4
                f.seek(-nbytes, 2)
                index = self.parse_index(f.read(nbytes))
                self._remember(shard, index)
            base = shard * self.shard_size
            wanted = []
            for pos in positions:
                offset, nbytes = index[int(rows[pos]) - base]
                if offset == EMPTY:
                    out[pos][...] = self.fill_value
                else:
                    wanted.append((int(offset), int(nbytes), pos))
            for run in _adjacent_runs(wanted):
                start = run[0][0]
                f.seek(start)
                data = f.read(run[-1][0] + run[-1][1] - start)
                for offset, nbytes, pos in run:
                    chunk = data[offset - start : offset - start + nbytes]
                    out[pos][...] = self.decode_chunk(chunk)


def _adjacent_runs(ranges: list[tuple[int, int, int]]) -> list[list[tuple[int, int, int]]]:
    """``(offset, nbytes, pos)`` ranges grouped into runs where each range starts where the previous
    one (in offset order) ends."""
    runs: list[list[tuple[int, int, int]]] = []
    for item in sorted(ranges):
        if runs and runs[-1][-1][0] + runs[-1][-1][1] == item[0]:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs
