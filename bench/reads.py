"""Read benchmark: every reader of a converted folder against the official loader's LMDB, one run.

Data: ``--patches`` replicated real S1/S2 pairs (``replicated.convert_replicated``: the three real
v1.0 pairs hard-linked under distinct v2 names, converted with the default codec preset and with
the read-optimised ``read`` preset) with release-like synthetic texts; the LMDB of safetensors the
official loader reads (``rico_style_baseline``). A *sample* is one text row with the native
imagery of its patch (S2 12 bands + S1 VV/VH). Two configs: ``captions`` (one text per patch, so
no decode can be shared between rows) and ``all`` (about 20 texts per patch).

Rules: every reader runs the same ``--rounds`` alternating rounds over the same random rows (best
round kept), in one process and one thread unless its row says otherwise (Blosc's own threads are
off, tensorstore's thread pools are limited to one thread in one-thread rows); CPU time is measured
next to wall time (``time.process_time``), so multi-threaded rows are compared per CPU-second too.
Ratios are against the LMDB random reader and the physical limit measured in the same run.

Usage: ``python bench/reads.py [--patches 10000] [--rounds 5] [--work DIR] [--out FILE.md]``
(``--work``: keep the converted folders there and reuse them in later runs). This script replaces
the loading figures of the former ``bench_loading.py``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLOSC_NTHREADS"):
    os.environ[_var] = "1"  # one thread unless a row says otherwise

import argparse  # noqa: E402
import itertools  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import deque  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

import lmdb  # noqa: E402
import numcodecs.blosc as blosc  # noqa: E402
import numpy as np  # noqa: E402
from datasets import IterableDataset  # noqa: E402
from safetensors.numpy import load as load_safetensors  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rico_style_baseline as rico  # noqa: E402
from filed_reader import filed_store_class  # noqa: E402
from replicated import convert_replicated  # noqa: E402

from bigearthnet_txt import recycled  # noqa: E402
from bigearthnet_txt.conversion.imagery.codecs import DEFAULT_PRESET  # noqa: E402
from bigearthnet_txt.imagery_join import ImageryJoin  # noqa: E402
from bigearthnet_txt.load_config import LoadConfig  # noqa: E402
from bigearthnet_txt.loading import load_dataset  # noqa: E402
from bigearthnet_txt.random_access import BigEarthNetTxt  # noqa: E402
from bigearthnet_txt.schema import IMAGERY_STORE, S1_BANDS, S2_BANDS  # noqa: E402
from bigearthnet_txt.shards import ShardLayout, blosc_c  # noqa: E402
from bigearthnet_txt.store import ImageryStore  # noqa: E402

READ_PRESET = "read"
WRITE_PRESET = "write"  # the write-optimised codec (the default before ``speed`` decoded faster)
SPLIT = "train"
ARRAYS = ("s2_10m", "s2_20m", "s2_60m", "s1")
CONFIGS = ("captions", "all")  # one text per patch; about 20 texts per patch
BUFFER = LoadConfig("all").buffer_size  # the default shuffle buffer
PROFILE_READS = "profile: the shuffled pass's patch reads alone"
# The commit the read issue was filed against: its ImageryStore.read sorted and deduplicated the
# rows, decoded them with numcodecs (Blosc of the then default codec, now the `write` preset) and
# reordered the result (values[inverse]); it kept at most 32 shard files mapped per array.
FILED_COMMIT = "f772e99"
FILED_READER = "the reader when the issue was filed"


def build(work: Path, n_patches: int) -> dict[str, Path]:
    """Converted folders (default and ``read`` preset) and the LMDB, reused when already in
    ``work``."""
    paths = {}
    folders = None
    for preset in (DEFAULT_PRESET, READ_PRESET, WRITE_PRESET):
        target = work / preset
        if not (target / "bigearthnet_txt" / "patches.parquet").exists():
            _, s2, s1 = convert_replicated(target, n_patches, preset=preset)
            folders = folders or [*s2, *s1]
        paths[preset] = target / "bigearthnet_txt"
    lmdb_dir = work / "lmdb"
    if not lmdb_dir.exists():
        if folders is None:
            src = work / DEFAULT_PRESET / "src"
            folders = sorted(p for p in src.glob("BigEarthNet-S*/*/*") if p.is_dir())
        rico.convert(folders, lmdb_dir, workers=1)
    paths["lmdb"] = lmdb_dir
    return paths


class LmdbReader:
    """The official loader's read path: one safetensors blob per patch name, bands at native size.

    ``cache_last``: keep the last patch read and hand it out again when the next row asks for the
    same patch (the one-patch cache our streaming has, for rows in patch order)."""

    _envs: dict[str, lmdb.Environment] = {}  # lmdb opens an environment once per process

    def __init__(self, path: Path, cache_last: bool = False):
        if str(path) not in self._envs:
            self._envs[str(path)] = lmdb.open(str(path), readonly=True, lock=False, readahead=False)
        self.env = self._envs[str(path)]
        self.cache_last = cache_last
        self._last: tuple[str, dict] | None = None

    def read_upsampled(self, patch_id: str, s1_name: str) -> dict[str, np.ndarray]:
        """The official loader's per-band nearest upsampling to 120 x 120."""
        with self.env.begin() as txn:
            s2 = load_safetensors(txn.get(patch_id.encode()))
            s1 = load_safetensors(txn.get(s1_name.encode()))
        bands = [s2[b].repeat(120 // s2[b].shape[0], 0).repeat(120 // s2[b].shape[1], 1)
                 for b in S2_BANDS]  # fmt: skip
        return {"s2": np.stack(bands), "s1": np.stack([s1[b] for b in S1_BANDS])}

    def read(self, patch_id: str, s1_name: str) -> dict[str, np.ndarray]:
        if self.cache_last and self._last is not None and self._last[0] == patch_id:
            return self._last[1]
        with self.env.begin() as txn:
            out = {**load_safetensors(txn.get(patch_id.encode())),
                   **load_safetensors(txn.get(s1_name.encode()))}  # fmt: skip
        if self.cache_last:
            self._last = (patch_id, out)
        return out


class Reader:
    """One measured reader: ``make()`` returns an iterable of ``n`` samples; ``threads`` > 1 in
    the rows that use more than this thread."""

    def __init__(self, group: str, name: str, make, n: int, threads: int = 1, unit="samples"):
        self.group, self.name, self.make, self.n, self.threads = group, name, make, n, threads
        self.unit = unit
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def measure(self) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        deque(self.make(), maxlen=0)
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)

    @property
    def rate(self) -> float:
        return self.n / min(self.wall)

    @property
    def cpu_rate(self) -> float:
        return self.n / min(self.cpu)


class SteadyReader(Reader):
    """A streaming reader timed between its first and last ``skip`` samples: with a shuffle buffer
    of ``skip`` rows, each of those samples reads exactly one new row (no filling, no draining)."""

    def __init__(self, group: str, name: str, make, n: int, skip: int, threads: int = 1):
        super().__init__(group, name, make, n - 2 * skip, threads)
        self.skip = skip

    def measure(self) -> None:
        it = iter(self.make())
        deque(itertools.islice(it, self.skip), maxlen=0)
        wall, cpu = time.perf_counter(), time.process_time()
        deque(itertools.islice(it, self.n), maxlen=0)
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)
        deque(it, maxlen=0)


def warm(store: ImageryStore) -> None:
    """Read every patch of ``store`` once, so that its shard files are mapped and their pages
    faulted in, as the LMDB's one environment per process is by its sequential readers."""
    n = store.shape("s1")[0]
    for start in range(0, n, 256):
        store.read(np.arange(start, min(start + 256, n)), ARRAYS)


def read_geotiffs(s2_folder: Path, s1_folder: Path) -> dict[str, np.ndarray]:
    """torchgeo-style: open and read every band file of the patch with rasterio."""
    import rasterio

    out = {}
    for folder in (s2_folder, s1_folder):
        for path in sorted(folder.glob("*.tif")):
            with rasterio.open(path) as ds:
                out[path.stem.rsplit("_", 1)[1]] = ds.read(1)
    return out


def encoded_chunks(root: Path, n: int) -> dict[str, list[bytes]]:
    """The encoded chunks of the first ``n`` patches of every array of a store."""
    encoded: dict[str, list[bytes]] = {a: [] for a in ARRAYS}
    for a in ARRAYS:
        layout = ShardLayout.load(root / IMAGERY_STORE / a)
        for shard in range((n + layout.shard_size - 1) // layout.shard_size):
            data = Path(layout.shard_path(shard)).read_bytes()
            index = layout.parse_index(data[-(layout.shard_size * 16 + 4) :])
            for offset, nbytes in index.tolist():
                if offset != 2**64 - 1 and len(encoded[a]) < n:
                    encoded[a].append(data[offset : offset + nbytes])
    return encoded


class PhysicalLimits:
    """Patches/s of (a) decoding the default codec's four chunks of a patch from memory into a
    preallocated patch with the reader's decoder (python-blosc's C entry point), (b) the same
    through ``numcodecs.blosc.decompress``, (c) (a) for the ``write`` codec, (d) a plain memory
    copy of the raw arrays of a patch; :meth:`measure` once per round, the best kept."""

    def __init__(self, root: Path, raw_root: Path, write_root: Path, n: int):
        self.n = n
        self.codecs = {
            "decode": encoded_chunks(root, n),
            "decode_write": encoded_chunks(write_root, n),
        }
        self.codecs["decode_numcodecs"] = self.codecs["decode"]
        self.raw = ImageryStore(raw_root).read(np.arange(n), ARRAYS)
        self.outs = {a: np.empty(self.raw[a].shape[1:], self.raw[a].dtype) for a in ARRAYS}
        self.best = dict.fromkeys((*self.codecs, "memcpy"), 0.0)
        self.best["patch_bytes"] = sum(self.raw[a][0].nbytes for a in ARRAYS)

    def measure(self) -> None:
        n, outs, best = self.n, self.outs, self.best
        addresses = {a: out.ctypes.data for a, out in outs.items()}
        for key, encoded in self.codecs.items():
            start = time.perf_counter()
            if key == "decode_numcodecs":
                for i in range(n):
                    for a in ARRAYS:
                        blosc.decompress(encoded[a][i], outs[a])
            else:
                for i in range(n):
                    for a in ARRAYS:
                        blosc_c.decompress_ptr(encoded[a][i], addresses[a])
            best[key] = max(best[key], n / (time.perf_counter() - start))
        start = time.perf_counter()
        for i in range(n):
            for a in ARRAYS:
                np.copyto(outs[a], self.raw[a][i])
        best["memcpy"] = max(best["memcpy"], n / (time.perf_counter() - start))


class NumcodecsDecoding:
    """Reads of ``store``'s layouts with every chunk decoded by ``numcodecs.blosc.decompress``
    (the reader's decoder before python-blosc's C entry point)."""

    def __init__(self, store: ImageryStore):
        self.layouts = {a: store._layout(a) for a in ARRAYS}

    @staticmethod
    def _decode_jobs(jobs, out):
        for chunk, pos in jobs:
            blosc.decompress(chunk, out[pos])

    def read(self, rows: np.ndarray, empty=recycled.empty) -> dict[str, np.ndarray]:
        """Like ``ImageryStore.read``, each array allocated by ``empty`` (default: recycled
        memory; ``numpy.empty`` for newly allocated arrays)."""
        out = {}
        for a, layout in self.layouts.items():
            layout._decode_jobs = self._decode_jobs  # this layout object only
            layout.decode_into = blosc.decompress  # the one-row path
            try:
                target = empty((len(rows), *layout.chunk_shape[1:]), layout.dtype)
                out[a] = layout.read_rows(rows, None, target)
            finally:
                del layout._decode_jobs, layout.decode_into
        return out


def tensorstore_reader(root: Path, threads: int):
    """A function reading rows of the four arrays with tensorstore (zarr3 driver), its thread
    pools limited to ``threads``."""
    import tensorstore as ts

    context = ts.Context({
        "data_copy_concurrency": {"limit": threads}, "file_io_concurrency": {"limit": threads},
        "cache_pool": {"total_bytes_limit": 0},
    })  # fmt: skip
    arrays = {
        a: ts.open({"driver": "zarr3", "kvstore": {"driver": "file",
                    "path": str(root / IMAGERY_STORE / a)}}, context=context, read=True).result()
        for a in ARRAYS
    }  # fmt: skip

    def read(rows: np.ndarray) -> dict[str, np.ndarray]:
        futures = {a: arr.oindex[rows].read() for a, arr in arrays.items()}
        return {a: f.result() for a, f in futures.items()}

    return read


def zarr_reader(root: Path):
    import zarr

    group = zarr.open_group(root / IMAGERY_STORE, mode="r")

    def read(rows: np.ndarray) -> dict[str, np.ndarray]:
        return {a: group[a].oindex[rows] for a in ARRAYS}

    return read


def config_readers(
    paths: dict, config: str, n_random: int, work: Path, seed: int, pool
) -> list[Reader]:
    """The sample readers of one config (rows of the ``train`` split)."""
    root, raw = paths[DEFAULT_PRESET], paths[READ_PRESET]
    cache = work / "arrow_cache"
    text = BigEarthNetTxt(root, config, SPLIT, imagery=(), cache_dir=cache)
    pids, s1s = text.table["patch_id"].to_pylist(), text.table["s1_name"].to_pylist()
    n_rows = len(text)
    rng = np.random.default_rng(seed)
    rand = rng.integers(0, n_rows, n_random).tolist()
    batches = [rng.integers(0, n_rows, 256).tolist() for _ in range(max(1, n_random // 256))]
    n_batched = 256 * len(batches)
    lean = BigEarthNetTxt(root, config, SPLIT, cache_dir=cache)
    lean_raw = BigEarthNetTxt(raw, config, SPLIT, cache_dir=cache)
    lean_write = BigEarthNetTxt(paths[WRITE_PRESET], config, SPLIT, cache_dir=cache)
    ds = load_dataset(root, config, SPLIT, cache_dir=str(work / "hf_cache"))
    ds_raw = load_dataset(raw, config, SPLIT, cache_dir=str(work / "hf_cache"))
    lmdb_random = LmdbReader(paths["lmdb"])
    lmdb_cached = LmdbReader(paths["lmdb"], cache_last=True)
    rounds = iter(range(1_000_000))

    def stream(folder, **options):
        return lambda: load_dataset(folder, config, SPLIT, streaming=True, **options)

    ds120 = load_dataset(root, config, SPLIT, resolution=120, cache_dir=str(work / "hf_cache"))
    for reader in (lean, lean_raw, lean_write):
        warm(reader.join.store)
    for joined in (ds, ds_raw, ds120):
        warm(joined._format_kwargs["transform"].store)
    src = paths[DEFAULT_PRESET].parent / "src"
    folders = {p.name: p for p in src.glob("BigEarthNet-S*/*/*") if p.is_dir()}
    tif = rand[:64]
    patch_rows = text.table["patch_index"].to_numpy()
    store = ImageryStore(root)
    skip = min(BUFFER, n_rows // 4)

    join = ImageryJoin(store)
    shuffled = np.random.default_rng(seed).permutation(patch_rows).tolist()

    how_read = ("`ImageryJoin.read_one` of each row in shuffled order" if config == "captions"
                else "`read_each`, batches of 256, file order")  # fmt: skip

    def decode_pass():  # the imagery reads of a shuffled streaming pass, nothing else
        if config == "captions":  # one row per patch: each decoded as its row leaves the buffer
            yield from (join.read_one(p) for p in shuffled)
            return
        for start in range(0, n_rows, 256):  # rows of a patch share a decode before the buffer
            batch = store.read_each(np.unique(patch_rows[start : start + 256]), ARRAYS)
            yield from range(len(batch["s1"]))

    def lmdb_threads(pool):  # random rows split between the pool's threads
        def part(rows):
            return [lmdb_random.read(pids[i], s1s[i]) for i in rows]

        return lambda: (s for chunk in pool.map(part, [rand[0::2], rand[1::2]]) for s in chunk)

    g = config
    extra = [
        Reader(g, "profile: streaming text only (`imagery=()`), shuffled, incl. start-up",
               lambda: stream(root, shuffle_seed=next(rounds), imagery=())(), n_rows),
        Reader(g, f"{PROFILE_READS} ({how_read})",
               decode_pass, n_rows),
        Reader(g, "LMDB random + official upsampling to 120 x 120",
               lambda: (lmdb_random.read_upsampled(pids[i], s1s[i]) for i in rand), len(rand)),
        Reader(g, "`load_dataset(..., resolution=120)` random `ds[i]`",
               lambda: (ds120[i] for i in rand), len(rand)),
        Reader(g, "GeoTIFF random (torchgeo-style, rasterio per band)",
               lambda: (read_geotiffs(folders[pids[i]], folders[s1s[i]]) for i in tif), len(tif)),
    ]  # fmt: skip
    return [
        Reader(g, "LMDB native random (anchor)",
               lambda: (lmdb_random.read(pids[i], s1s[i]) for i in rand), len(rand)),
        Reader(g, "LMDB sequential, table order", lambda: (
            lmdb_random.read(p, s) for p, s in zip(pids, s1s, strict=True)), n_rows),
        Reader(g, "LMDB sequential, table order, one-patch cache", lambda: (
            lmdb_cached.read(p, s) for p, s in zip(pids, s1s, strict=True)), n_rows),
        Reader(g, "`BigEarthNetTxt` random `ds[i]`", lambda: (lean[i] for i in rand), len(rand)),
        Reader(g, "`load_dataset` random `ds[i]`", lambda: (ds[i] for i in rand), len(rand)),
        Reader(g, "`BigEarthNetTxt` random `__getitems__(256)`",
               lambda: (r for b in batches for r in lean.__getitems__(b)), n_batched),
        Reader(g, "`load_dataset` random `__getitems__(256)`",
               lambda: (r for b in batches for r in ds.__getitems__(b)), n_batched),
        Reader(g, "LMDB native random, 2 threads", lmdb_threads(pool), len(rand), threads=2),
        Reader(g, "streaming, shuffled, one pass incl. start-up",
               lambda: stream(root, shuffle_seed=next(rounds))(), n_rows),
        SteadyReader(g, f"streaming, shuffled, steady state (between the first and last {skip} "
                     "rows: buffer full)", lambda: stream(root, shuffle_seed=next(rounds))(),
                     n_rows, skip),
        Reader(g, "streaming, shuffled by `.shuffle(seed)` (`datasets`' idiom), one pass incl. "
               "start-up", lambda: stream(root)().shuffle(seed=next(rounds), buffer_size=BUFFER),
               n_rows),
        Reader(g, "`datasets`' own `IterableDataset.shuffle` after the join (what `.shuffle` did "
               "before: the buffer holds decoded rows)", lambda: IterableDataset.shuffle(
                   stream(root)(), seed=next(rounds), buffer_size=BUFFER), n_rows),
        Reader(g, "streaming, in order, one pass incl. start-up", lambda: stream(root)(), n_rows),
        Reader(g, "streaming, shuffled, 2 decode threads",
               lambda: stream(root, shuffle_seed=next(rounds), decode_threads=2)(), n_rows,
               threads=2),
        Reader(g, "`read` preset: `BigEarthNetTxt` random `ds[i]`",
               lambda: (lean_raw[i] for i in rand), len(rand)),
        Reader(g, "`read` preset: `load_dataset` random `ds[i]`",
               lambda: (ds_raw[i] for i in rand), len(rand)),
        Reader(g, "`read` preset: streaming, shuffled, one pass incl. start-up",
               lambda: stream(raw, shuffle_seed=next(rounds))(), n_rows),
        Reader(g, f"`{WRITE_PRESET}` preset: `BigEarthNetTxt` random `ds[i]`",
               lambda: (lean_write[i] for i in rand), len(rand)),
        Reader(g, f"`{WRITE_PRESET}` preset: streaming, shuffled, one pass incl. start-up",
               lambda: stream(paths[WRITE_PRESET], shuffle_seed=next(rounds))(), n_rows),
    ] + extra  # fmt: skip


def batch_readers(
    paths: dict, n_patches: int, n_random: int, seed: int, work: Path
) -> list[Reader]:
    """Patch readers: random batches of 1 / 64 / 256 patches, all four arrays."""
    root = paths[DEFAULT_PRESET]
    rng = np.random.default_rng(seed)
    store = ImageryStore(root)
    store2 = ImageryStore(root, decode_threads=2)
    write_store = ImageryStore(paths[WRITE_PRESET])
    # the reader the read issue was filed against, its own code, on its default codec (`write`)
    filed_at = filed_store_class(FILED_COMMIT, work)(paths[WRITE_PRESET])
    check = np.array([n_patches - 1, 0, 5, 0])
    for a, v in filed_at.read(check, ARRAYS).items():
        assert v.tobytes() == store.read(check, [a])[a].tobytes(), a
    for each_store in (store, store2, write_store, filed_at):
        warm(each_store)
    filed_store, numcodecs_store = NumcodecsDecoding(write_store), NumcodecsDecoding(store)
    ts1, ts2 = tensorstore_reader(root, 1), tensorstore_reader(root, 2)
    zr = zarr_reader(root)
    out = []
    for size in (1, 64, 256):
        count = max(1, n_random // size)
        batches = [rng.integers(0, n_patches, size) for _ in range(count)]
        sorted_batches = [np.sort(b) for b in batches]

        def filed(rows):  # the filed reader's steps on today's layouts: sort, dedupe, read, reorder
            unique, inverse = np.unique(rows, return_inverse=True)
            read = filed_store.read(unique, np.empty)
            return {a: v[inverse] for a, v in read.items()}

        def each(fn, bs=batches):
            return lambda: (fn(b) for b in bs)

        n = size * count
        g = f"batches of {size}"
        out += [
            Reader(g, "ours `ImageryStore.read`", each(lambda b: store.read(b, ARRAYS)), n),
            Reader(g, "ours, same batches handed in sorted",
                   each(lambda b: store.read(b, ARRAYS), sorted_batches), n),
            Reader(g, f"{FILED_READER} at `{FILED_COMMIT}`, its own code",
                   each(lambda b: filed_at.read(b, ARRAYS)), n),
            Reader(g, f"{FILED_READER} with today's shard mappings (`{WRITE_PRESET}` codec, "
                   "`numcodecs` decoder, sort / read / reorder into fresh memory)", each(filed), n),
            Reader(g, "ours through the `numcodecs` decoder",
                   each(lambda b: numcodecs_store.read(b)), n),
            Reader(g, f"ours on the `{WRITE_PRESET}` codec",
                   each(lambda b: write_store.read(b, ARRAYS)), n),
            Reader(g, "ours, 2 decode threads", each(lambda b: store2.read(b, ARRAYS)), n, 2),
            Reader(g, "tensorstore, 1 thread", each(ts1), n),
            Reader(g, "tensorstore, 2 threads", each(ts2), n, 2),
            Reader(g, "zarr-python `oindex`", each(zr, batches[: max(1, 64 // size)]),
                   size * min(count, max(1, 64 // size))),
        ]  # fmt: skip
    return out


def store_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in (folder / IMAGERY_STORE).rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patches", type=int, default=10000, help="replicated patches (60% train)")
    parser.add_argument("--random", type=int, default=2048, help="random samples per reader")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per reader")
    parser.add_argument("--work", type=Path, default=None, help="keep / reuse the data here")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "reads.md")
    args = parser.parse_args()
    blosc.use_threads = False
    blosc.set_nthreads(1)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-reads-"))
    started = time.perf_counter()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
    paths = build(work, args.patches)
    lmdb_size = rico.lmdb_bytes(paths["lmdb"])
    limits = PhysicalLimits(paths[DEFAULT_PRESET], paths[READ_PRESET], paths[WRITE_PRESET], 512)
    pool = ThreadPoolExecutor(2)
    readers = [r for c in CONFIGS for r in config_readers(paths, c, args.random, work, 0, pool)]
    readers += batch_readers(paths, args.patches, args.random, 1, work)
    for reader in readers:  # one unmeasured warm-up round: imports, page cache, first mappings
        deque(reader.make(), maxlen=0)
    for _ in range(args.rounds):
        limits.measure()
        for reader in readers:
            reader.measure()
    total = time.perf_counter() - started
    sizes = {p: store_bytes(paths[p]) for p in (DEFAULT_PRESET, WRITE_PRESET, READ_PRESET)}
    report = render(args, readers, limits.best, sizes, lmdb_size, commit, total)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)


def render(args, readers, limits, sizes, lmdb_size, commit, total) -> str:
    lines = [
        "# Read benchmark",
        "",
        f"Made by `python bench/reads.py --patches {args.patches} --random {args.random} "
        f"--rounds {args.rounds}` at commit `{commit}` on {date.today().isoformat()} "
        f"({total:.0f} s, {os.cpu_count()} CPU cores shared with other jobs). "
        f"{args.patches} replicated real S1/S2 pairs (60 % in `train`); a sample is one text row "
        "with the native S2 (12 bands) + S1 of its patch. Every reader runs the same "
        f"{args.rounds} alternating rounds (best kept) after one warm-up round, one process, "
        "one thread unless the threads column says otherwise (Blosc's threads off, "
        "tensorstore's pools limited). "
        "Streaming passes include start-up (`load_dataset(...)` + iterating every `train` row). "
        "Every store over a folder shares the process's mappings of its shard files "
        "(`bigearthnet_txt.mapped_files`), as every LMDB reader shares the one environment "
        "py-lmdb opens per process; both are read through once before the rounds (the random "
        "readers' stores by one batched pass each, the LMDB by its sequential readers), so every "
        "reader, streaming passes included, starts with its files mapped and paged in.",
        "",
        "## Physical limit",
        "",
        f"Per patch ({limits['patch_bytes'] / 1e3:.0f} kB of raw arrays), one thread, from memory "
        "(512 patches, measured in every round, best kept):",
        "",
        "| operation | patches/s | µs per patch |",
        "|---|---:|---:|",
        f"| decode the default codec (`{DEFAULT_PRESET}`), four chunks into a preallocated patch | "
        f"{limits['decode']:,.0f} | {1e6 / limits['decode']:.1f} |",
        f"| the same through `numcodecs.blosc.decompress` (the decoder before this one) | "
        f"{limits['decode_numcodecs']:,.0f} | {1e6 / limits['decode_numcodecs']:.1f} |",
        f"| decode the `{WRITE_PRESET}` codec (the default before this one) like the first row | "
        f"{limits['decode_write']:,.0f} | {1e6 / limits['decode_write']:.1f} |",
        f"| plain memory copy of the raw arrays | {limits['memcpy']:,.0f} | "
        f"{1e6 / limits['memcpy']:.1f} |",
        "",
        "Store size: "
        + ", ".join(f"`{p}` preset {b / lmdb_size:.3f}× the LMDB's bytes" for p, b in sizes.items())
        + f" (LMDB {lmdb_size / 1e6:.0f} MB).",
    ]
    groups: dict[str, list[Reader]] = {}
    for r in readers:
        groups.setdefault(r.group, []).append(r)
    for group, members in groups.items():
        is_config = group in CONFIGS
        anchor = members[0].rate
        title = (f"## Config `{group}` (samples)" if is_config
                 else f"## Random {group} patches, four arrays (patches)")  # fmt: skip
        lines += ["", title, ""]
        if is_config:
            lines += [
                f"Anchor: LMDB native random, {anchor:,.0f} samples/s. Limit columns: the rate as a"
                " fraction of the physical limit of its codec (decode for the default preset, "
                "memory copy for `read`).",
                "",
                "| reader | threads | samples/s | per CPU-second | vs LMDB random | of limit |",
                "|---|---:|---:|---:|---:|---:|",
            ]
            for r in members:
                limit = limits[
                    "memcpy" if "`read`" in r.name or "LMDB" in r.name
                    else "decode_write" if f"`{WRITE_PRESET}`" in r.name else "decode"
                ]  # fmt: skip
                lines.append(
                    f"| {r.name} | {r.threads} | {r.rate:,.0f} | {r.cpu_rate:,.0f} | "
                    f"{r.rate / anchor:.2f}× | {r.rate / limit:.2f} |"
                )
            if group != "captions":  # several texts per patch share reads: no clean split
                continue
            by_name = {r.name: r for r in members}
            full = by_name["streaming, shuffled, one pass incl. start-up"]
            in_order = by_name["streaming, in order, one pass incl. start-up"]
            text = by_name["profile: streaming text only (`imagery=()`), shuffled, incl. start-up"]
            reads = next(r for r in members if r.name.startswith(PROFILE_READS))
            us = {
                name: 1e6 / r.rate
                for name, r in (("full", full), ("text", text), ("reads", reads), ("in", in_order))
            }
            rest = us["full"] - us["text"] - us["reads"]
            lines += [
                "",
                f"Where a shuffled streaming pass of `{group}` spends its time, µs per sample "
                f"(best rounds): {us['full']:.1f} in all = {us['text']:.1f} text (Parquet → Python "
                "rows, shuffle buffer, start-up) + "
                f"{us['reads']:.1f} imagery reads (each row's patch decoded into its own arrays "
                "as the row leaves the buffer, rows in shuffled order; the decode limit alone is "
                f"{1e6 / limits['decode']:.1f} per patch) + {rest:.1f} the rest (`datasets`' map "
                "after the buffer, adding the arrays to the rows). The pass in file order, "
                f"unshuffled, takes {us['in']:.1f} µs per sample.",
            ]
        else:
            lines += [
                "| reader | threads | patches/s | per CPU-second | vs ours |",
                "|---|---:|---:|---:|---:|",
            ]
            for r in members:
                lines.append(
                    f"| {r.name} | {r.threads} | {r.rate:,.0f} | {r.cpu_rate:,.0f} | "
                    f"{r.rate / anchor:.2f}× |"
                )
            own, steps = (r.rate for r in members if r.name.startswith(FILED_READER))
            lines += [
                "",
                f"Ours (one thread) reads at {anchor / own:.2f}× {FILED_READER} (its own code at "
                f"`{FILED_COMMIT}`) and at {anchor / steps:.2f}× its steps on today's shard "
                "mappings.",
            ]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
