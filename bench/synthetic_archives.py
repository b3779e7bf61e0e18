"""A synthetic BigEarthNet archive set with the release's layout, made of the real sample patches.

``make_archive_set(folder, patches, ...)`` writes, for ``patches`` synthetic patches (those of a
release-sized annotation file from ``bigearthnet_txt.conversion.synthetic.write_full_size``,
scaled down):

* ``BigEarthNet.txt.parquet`` — the annotation rows of those patches;
* ``metadata.parquet`` — their metadata (split, labels, country, ``s1_name``, ``s2v1_name``);
* ``BigEarthNet-S2``, ``BigEarthNet-S1``, ``Reference_Maps`` — v2 folder trees
  (``<product>/<patch>/<patch>_<band>.tif``) whose band files are hard links to the real sample
  GeoTIFFs (``bigearthnet_txt.conversion.sample_data``), cycled over the sample patches: real
  encodings, value ranges and sizes, no disk cost;
* with ``archives=True`` also ``BigEarthNet-S2.tar.zst`` … built like the official archives
  (GNU tar, sorted members, zstd level 6, hard links stored as regular files).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bigearthnet_txt.conversion.imagery.sources import iter_folder
from bigearthnet_txt.conversion.sample_data import (
    LEGACY_FLAT_S2_DIR,
    METADATA_FILE,
    V1_S1_DIR,
    V1_S2_DIR,
    V2_REFERENCE_MAPS_DIR,
    V2_S1_DIR,
    V2_S2_DIR,
)
from bigearthnet_txt.conversion.synthetic import FULL_PATCHES, FULL_ROWS, write_full_size

TOPS = {"s2": "BigEarthNet-S2", "s1": "BigEarthNet-S1", "reference_maps": "Reference_Maps"}


@dataclass
class ArchiveSet:
    """A generated set: annotation and metadata files, the folder trees and (optionally) the
    ``.tar.zst`` archives, one per modality (``s2``, ``s1``, ``reference_maps``)."""

    annotations: Path
    metadata: Path
    folders: dict[str, Path]
    archives: dict[str, Path]
    n_patches: int
    n_rows: int

    def sources(self, layout: str) -> dict[str, Path]:
        """The sources of ``layout``: ``"folders"`` or ``"archives"``."""
        return self.folders if layout == "folders" else self.archives

    def size(self, layout: str) -> dict[str, int]:
        """Bytes per modality: archive files, or the band files of the folders."""
        return {
            kind: path.stat().st_size
            if path.is_file()
            else sum(f.stat().st_size for f in path.rglob("*.tif"))
            for kind, path in self.sources(layout).items()
        }


def _sample_bands(folders) -> list[dict[str, Path]]:
    """``{band: file}`` of every sample patch under ``folders``."""
    return [dict(p.files) for folder in folders for p in iter_folder(folder)]


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _write_tree(
    root: Path, names: list[str], samples: list[dict[str, Path]], product_parts: int
) -> None:
    for i, name in enumerate(names):
        folder = root / "_".join(name.split("_")[:product_parts]) / name
        folder.mkdir(parents=True, exist_ok=True)
        for band, file in samples[i % len(samples)].items():
            _link(file, folder / f"{name}_{band}.tif")


def _metadata(patches: pa.Table, seed: int) -> pa.Table:
    real = pq.read_table(METADATA_FILE, columns=["labels", "country"])
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, real.num_rows, patches.num_rows)
    ids = patches["patch_id"].to_pylist()
    s2v1 = ["_".join(p.split("_")[:3] + p.split("_")[-2:]) for p in ids]
    false = pa.array(np.zeros(len(ids), bool))
    return pa.table(
        {
            "patch_id": patches["patch_id"],
            "labels": real["labels"].take(pick),
            "split": patches["split"],
            "country": real["country"].take(pick),
            "s1_name": patches["s1_name"],
            "s2v1_name": pa.array(s2v1, pa.string()),
            "contains_seasonal_snow": false,
            "contains_cloud_or_shadow": false,
        }
    )


def _tar_zst(folder: Path, top: str) -> Path:
    out = folder / f"{top}.tar.zst"
    tar = subprocess.Popen(
        [
            "tar",
            "--sort=name",
            "--format=gnu",
            "--hard-dereference",
            "-cf",
            "-",
            "-C",
            str(folder),
            top,
        ],
        stdout=subprocess.PIPE,
    )
    subprocess.run(["zstd", "-q", "-6", "-T0", "-f", "-o", str(out)], stdin=tar.stdout, check=True)
    tar.stdout.close()
    if tar.wait():
        raise RuntimeError(f"tar failed for {top}")
    return out


def _write_annotations(path: Path, rows: int, patches: int, seed: int) -> Path:
    """``write_full_size`` at this size; a seed whose random multiple-choice pool has fewer than
    three distractors (the generator raises ``ValueError``) is replaced by the next one."""
    row_groups = max(1, round(78 * rows / FULL_ROWS))
    for attempt in range(seed, seed + 10):
        try:
            return write_full_size(
                path, rows=rows, patches=patches, row_groups=row_groups, seed=attempt
            )
        except ValueError:
            continue
    raise RuntimeError(f"no annotation file for {patches} patches with seeds {seed}..{seed + 9}")


def make_archive_set(
    folder: Path, fraction: float, *, archives: bool = True, seed: int = 0
) -> ArchiveSet:
    """Generate the set for ``fraction`` of the release's annotated patches and rows under
    ``folder``."""
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    patches = max(8, round(FULL_PATCHES * fraction))
    rows = max(100, round(FULL_ROWS * fraction))
    annotations = _write_annotations(folder / "BigEarthNet.txt.parquet", rows, patches, seed)
    table = pq.read_table(annotations, columns=["patch_id", "s1_name", "split"])
    unique = table.group_by(["patch_id", "s1_name", "split"]).aggregate([])
    unique = unique.sort_by("patch_id")
    metadata = folder / "metadata.parquet"
    pq.write_table(_metadata(unique, seed), metadata)
    ids = unique["patch_id"].to_pylist()
    s1_names = unique["s1_name"].to_pylist()
    s2_samples = _sample_bands([V2_S2_DIR, LEGACY_FLAT_S2_DIR, V1_S2_DIR])
    s1_samples = _sample_bands([V2_S1_DIR, V1_S1_DIR])
    reference_samples = _sample_bands([V2_REFERENCE_MAPS_DIR])
    _write_tree(folder / TOPS["s2"], ids, s2_samples, -2)
    _write_tree(folder / TOPS["s1"], s1_names, s1_samples, -3)
    _write_tree(folder / TOPS["reference_maps"], ids, reference_samples, -2)
    folders = {kind: folder / top for kind, top in TOPS.items()}
    archive_files = {kind: _tar_zst(folder, top) for kind, top in TOPS.items()} if archives else {}
    n_rows = pq.ParquetFile(annotations).metadata.num_rows
    return ArchiveSet(annotations, metadata, folders, archive_files, len(ids), n_rows)
