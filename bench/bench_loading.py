"""Loading benchmark: ``bigearthnet_txt.load_dataset`` vs the official loader's LMDB, GeoTIFFs and an Arrow table.

One run, same replicated real patches (``bench_imagery.replicate``: the three real v1.0 S1/S2 pairs
hard-linked to ``--patches`` distinct v2-style patches), same annotation rows (synthetic texts in the
release schema, ~20 per patch, sorted by patch as conversion writes them). A *sample* is one text row
with the full native-resolution imagery of its patch: S2 (12 bands) + S1 (VV, VH).

Readers, each in one process:

* ours, map-style: ``load_dataset(DIR, "all", "train")`` then ``ds[i]`` at random ``i`` (and
  ``ds[[i1..i64]]``, what a DataLoader batch sampler asks); ours, ``BigEarthNetTxt(DIR, "all",
  "train")`` (``bigearthnet_txt.random_access``): ``ds[i]`` and ``ds.__getitems__([i1..i64])``, what a
  DataLoader calls; ours, streaming: iterate ``load_dataset(..., streaming=True)``;
* (a) rico-hdl-style LMDB of safetensors (``rico_style_baseline``), read as the official loader does:
  per row, ``txn.get`` of the S2 and the S1 patch and ``safetensors.numpy.load``; random rows and rows
  in table order; also with the official per-band nearest upsampling to 120 × 120;
* (b) torchgeo-style: per row, every band GeoTIFF opened and read with rasterio;
* (c) a plain HF Arrow table with image columns (one row per patch, ``Array3D`` columns, numpy format),
  looked up per text row through ``patch_index``.

Usage: ``python bench/bench_loading.py [--patches 1000] [--preset speed] [--rounds 3] [--out bench/results/loading.md]``
(``--preset``: the imagery codec preset of the converted store, ``bigearthnet_txt.conversion.imagery.codecs``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import lmdb
import numpy as np
import rasterio
from safetensors.numpy import load as load_safetensors

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rico_style_baseline as rico
from replicated import convert_replicated

from bigearthnet_txt.conversion.imagery.codecs import DEFAULT_PRESET
from bigearthnet_txt.loading import load_dataset
from bigearthnet_txt.random_access import BigEarthNetTxt
from bigearthnet_txt.schema import S1_BANDS, S2_BANDS

SPLIT = "train"


def rate(fn, n: int) -> float:
    """Samples per second of ``fn()``, which returns an iterable of ``n`` samples; each sample is
    dropped as soon as it is produced (no reader keeps its results alive)."""
    start = time.perf_counter()
    deque(fn(), maxlen=0)
    return n / (time.perf_counter() - start)


def build(work: Path, n_patches: int, preset: str = DEFAULT_PRESET):
    """Converted folder, LMDB, GeoTIFF folders and patch metadata of ``n_patches`` replicated patches."""
    out, s2_folders, s1_folders = convert_replicated(work, n_patches, preset=preset)
    lmdb_dir = work / "lmdb"
    rico.convert([*s2_folders, *s1_folders], lmdb_dir, workers=1)
    folders = {f.name: f for f in [*s2_folders, *s1_folders]}
    return out, lmdb_dir, folders


class LmdbReader:
    """The official loader's read path: one safetensors blob per patch name, bands at native size."""

    def __init__(self, path: Path):
        self.env = lmdb.open(str(path), readonly=True, lock=False, readahead=False)

    def read(self, patch_id: str, s1_name: str, upsample: bool = False) -> dict[str, np.ndarray]:
        with self.env.begin() as txn:
            s2 = load_safetensors(txn.get(patch_id.encode()))
            s1 = load_safetensors(txn.get(s1_name.encode()))
        if not upsample:
            return {**s2, **s1}
        bands = [
            s2[b].repeat(120 // s2[b].shape[0], 0).repeat(120 // s2[b].shape[1], 1)
            for b in S2_BANDS
        ]
        return {"s2": np.stack(bands), "s1": np.stack([s1[b] for b in S1_BANDS])}


def read_geotiffs(s2_folder: Path, s1_folder: Path) -> dict[str, np.ndarray]:
    """torchgeo-style: open and read every band file of the patch."""
    out = {}
    for folder in (s2_folder, s1_folder):
        for path in sorted(folder.glob("*.tif")):
            with rasterio.open(path) as ds:
                out[path.stem.rsplit("_", 1)[1]] = ds.read(1)
    return out


def arrow_image_table(store_root: Path, work: Path):
    """A plain HF Arrow table, one row per patch, imagery in ``Array3D`` columns (numpy format)."""
    from datasets import Array3D, Dataset, Features, Value

    from bigearthnet_txt.store import ImageryStore

    store = ImageryStore(store_root)
    indices = store.patches["patch_index"].to_pylist()
    features = Features({
        "patch_index": Value("int32"),
        "s2_10m": Array3D((4, 120, 120), "uint16"), "s2_20m": Array3D((6, 60, 60), "uint16"),
        "s2_60m": Array3D((2, 20, 20), "uint16"), "s1": Array3D((2, 120, 120), "float32"),
    })  # fmt: skip

    def rows():
        for start in range(0, len(indices), 64):
            chunk = indices[start : start + 64]
            batch = store.read(chunk, ("s2_10m", "s2_20m", "s2_60m", "s1"))
            for j, pi in enumerate(chunk):
                yield {"patch_index": pi, **{k: v[j] for k, v in batch.items()}}

    ds = Dataset.from_generator(rows, features=features, cache_dir=str(work / "hf_arrow"))
    row_of = np.full(max(indices) + 1, -1, dtype=np.int64)
    row_of[np.array(ds["patch_index"])] = np.arange(len(ds))
    return ds.with_format("numpy"), row_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patches", type=int, default=1000)
    parser.add_argument(
        "--random", type=int, default=1000, help="random samples per map-style reader"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds per reader (best kept)"
    )
    parser.add_argument("--geotiff", type=int, default=60, help="samples read through GeoTIFFs")
    parser.add_argument(
        "--preset", default=DEFAULT_PRESET, help="imagery codec preset of the store"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "loading.md"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-loading-"))
    try:
        started = time.perf_counter()
        root, lmdb_dir, folders = build(work, args.patches, args.preset)
        cache = str(work / "hf_cache")
        ds = load_dataset(root, "all", SPLIT, cache_dir=cache)
        text = load_dataset(root, "all", SPLIT, imagery=(), cache_dir=cache)
        pids, s1s, pis = text["patch_id"], text["s1_name"], text["patch_index"]
        pids, s1s, pis = list(pids), list(s1s), np.asarray(list(pis))
        n_rows = len(text)
        rng = np.random.default_rng(0)
        rand = rng.integers(0, n_rows, args.random).tolist()
        batches = [rng.integers(0, n_rows, 64).tolist() for _ in range(max(1, args.random // 64))]
        lmdb_reader = LmdbReader(lmdb_dir)
        arrow, row_of = arrow_image_table(root, work)
        results: dict[str, float] = {}
        readers: dict = {}  # name: (fn, samples); measured in alternating rounds, best kept

        readers["ours random ds[i]"] = (lambda: (ds[i] for i in rand), len(rand))
        readers["ours random ds[i], text only"] = (lambda: (text[i] for i in rand), len(rand))
        readers["ours random ds[[64 rows]]"] = (lambda: (ds[b] for b in batches), 64 * len(batches))
        ds120 = load_dataset(root, "all", SPLIT, resolution=120, cache_dir=cache)
        readers["ours random ds[i], 120x120"] = (lambda: (ds120[i] for i in rand), len(rand))
        seq = BigEarthNetTxt(root, "all", SPLIT, cache_dir=work / "arrow_cache")
        readers["ours BigEarthNetTxt random ds[i]"] = (lambda: (seq[i] for i in rand), len(rand))
        seq_text = BigEarthNetTxt(root, "all", SPLIT, imagery=(), cache_dir=work / "arrow_cache")
        readers["ours BigEarthNetTxt random ds[i], text only"] = (
            lambda: (seq_text[i] for i in rand),
            len(rand),
        )
        readers["ours BigEarthNetTxt random __getitems__(64 rows)"] = (
            lambda: (row for b in batches for row in seq.__getitems__(b)),
            64 * len(batches),
        )
        stream = load_dataset(root, "all", SPLIT, streaming=True)
        readers["ours streaming"] = (lambda: stream, n_rows)

        readers["LMDB random"] = (
            lambda: (lmdb_reader.read(pids[i], s1s[i]) for i in rand),
            len(rand),
        )
        readers["LMDB random, official upsampling"] = (
            lambda: (lmdb_reader.read(pids[i], s1s[i], upsample=True) for i in rand),
            len(rand),
        )
        readers["LMDB sequential"] = (
            lambda: (lmdb_reader.read(p, s) for p, s in zip(pids, s1s)),
            n_rows,
        )
        tif = rand[: args.geotiff]
        readers["GeoTIFF random"] = (
            lambda: (read_geotiffs(folders[pids[i]], folders[s1s[i]]) for i in tif),
            len(tif),
        )
        readers["Arrow table random"] = (
            lambda: (arrow[int(row_of[pis[i]])] for i in rand),
            len(rand),
        )
        readers["Arrow table sequential"] = (lambda: (arrow[int(row_of[p])] for p in pis), n_rows)
        for round_ in range(args.rounds):
            for name, (fn, n) in readers.items():
                if round_ and name.startswith(("GeoTIFF", "Arrow table")):
                    continue
                results[name] = max(results.get(name, 0.0), rate(fn, n))
        total = time.perf_counter() - started

        lmdb_r, lmdb_s, tif_r = (
            results["LMDB random"],
            results["LMDB sequential"],
            results["GeoTIFF random"],
        )
        ratios = [
            ("random ds[i] / LMDB random (target >= 0.5)", results["ours random ds[i]"] / lmdb_r),
            ("random ds[[64]] / LMDB random (target >= 0.5)", results["ours random ds[[64 rows]]"] / lmdb_r),
            ("BigEarthNetTxt random ds[i] / LMDB random (target >= 0.5)",
             results["ours BigEarthNetTxt random ds[i]"] / lmdb_r),
            ("BigEarthNetTxt random __getitems__(64) / LMDB random (target >= 0.5)",
             results["ours BigEarthNetTxt random __getitems__(64 rows)"] / lmdb_r),
            ("random ds[i] 120x120 / LMDB official upsampling", results["ours random ds[i], 120x120"]
             / results["LMDB random, official upsampling"]),
            ("streaming / LMDB sequential (target >= 1.0)", results["ours streaming"] / lmdb_s),
            ("random ds[i] / GeoTIFF (target >= 100)", results["ours random ds[i]"] / tif_r),
            ("streaming / GeoTIFF (target >= 100)", results["ours streaming"] / tif_r),
        ]  # fmt: skip
        lines = [
            "# Loading benchmark",
            "",
            (
                f"{args.patches} replicated real patches, {n_rows} `{SPLIT}` text rows of config `all`, "
                f"{os.cpu_count()} CPU cores, one process; one run of `python bench/bench_loading.py "
                f"--patches {args.patches} --preset {args.preset} --rounds {args.rounds}` ({total:.0f} s), "
                f"imagery codec preset `{args.preset}`. Sample = one text row + native S2 (12 bands) + "
                f"S1. Readers are measured in {args.rounds} alternating rounds, best round kept "
                f"(GeoTIFF and Arrow table: one round)."
            ),
            "",
            "| reader | samples/s |",
            "|---|---:|",
            *[f"| {name} | {value:,.0f} |" for name, value in results.items()],
            "",
            "| ratio | value |",
            "|---|---:|",
            *[f"| {name} | {value:.2f}× |" for name, value in ratios],
        ]
        report = "\n".join(lines) + "\n"
        print(report)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
