"""A rico-hdl-style converter, the baseline of ``bench_imagery.py``.

Like rico-hdl (the format the official BigEarthNet.txt loader reads): every band GeoTIFF is read
with rasterio at native resolution, the bands of one patch are saved as one safetensors blob
(tensor names ``B01`` … ``B12``, ``B8A``, ``VV``, ``VH``) and stored in an LMDB under the patch
name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import lmdb
import numpy as np
import rasterio
from safetensors.numpy import load, save

MAP_SIZE = 1 << 40


def patch_blob(folder: Path) -> tuple[bytes, bytes]:
    """``(key, safetensors bytes)`` of one patch folder of band GeoTIFFs."""
    tensors: dict[str, np.ndarray] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".tif", ".tiff"):
            continue
        band = path.stem.rsplit("_", 1)[1]
        with rasterio.open(path) as ds:
            tensors[band] = ds.read(1)
    return folder.name.encode(), save(tensors)


def convert(folders: Iterable[Path], lmdb_path: Path, workers: int = 1) -> int:
    """Write every patch folder into a fresh LMDB; returns the number of patches."""
    folders = list(folders)
    Path(lmdb_path).mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(lmdb_path), map_size=MAP_SIZE, subdir=True, lock=False)
    count = 0
    with env.begin(write=True) as txn:
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                for key, blob in pool.map(patch_blob, folders, chunksize=16):
                    txn.put(key, blob)
                    count += 1
        else:
            for folder in folders:
                key, blob = patch_blob(folder)
                txn.put(key, blob)
                count += 1
    env.sync()
    env.close()
    return count


def lmdb_bytes(lmdb_path: Path) -> int:
    """Bytes of the LMDB's used pages (the data file's size on a fresh, compacted database)."""
    env = lmdb.open(str(lmdb_path), readonly=True, lock=False)
    info, stat = env.info(), env.stat()
    used = (info["last_pgno"] + 1) * stat["psize"]
    env.close()
    return min(used, os.path.getsize(lmdb_path / "data.mdb"))


def read_patches(lmdb_path: Path, keys: list[bytes]) -> list[dict[str, np.ndarray]]:
    """Decode the blobs of ``keys`` (the loader's read path)."""
    env = lmdb.open(str(lmdb_path), readonly=True, lock=False)
    with env.begin() as txn:
        out = [load(txn.get(k)) for k in keys]
    env.close()
    return out
