"""Read benchmark: every reader of a converted folder against the official loader's LMDB, one run.

Data: ``--patches`` replicated real S1/S2 pairs (``replicated.convert_replicated``: the three real
v1.0 pairs hard-linked under distinct v2 names, converted with the default codec preset and with the
read-optimised ``read`` preset) with release-like synthetic texts; the LMDB of safetensors the
official loader reads (``rico_style_baseline``). A *sample* is one text row with the native-resolution
imagery of its patch (S2 12 bands + S1 VV/VH). Two configs: ``captions`` (one text per patch, so no
decode can be shared between rows) and ``all`` (about 20 texts per patch).

Rules: every reader runs the same ``--rounds`` alternating rounds over the same random rows (best
round kept), in one process and one thread unless its row says otherwise (Blosc's own threads are
off, tensorstore's thread pools are limited to one thread in one-thread rows); CPU time is measured
next to wall time (``time.process_time``), so multi-threaded rows are compared per CPU-second too.
Ratios are against the LMDB random reader and against the physical limit measured in the same run.

Usage: ``python bench/reads.py [--patches 2000] [--rounds 3] [--work DIR] [--out bench/results/reads.md]``
(``--work``: keep the converted folders there and reuse them in later runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rico_style_baseline as rico  # noqa: E402
from replicated import convert_replicated  # noqa: E402

from bigearthnet_txt.conversion.imagery.codecs import DEFAULT_PRESET  # noqa: E402

READ_PRESET = "read"


def build(work: Path, n_patches: int) -> dict[str, Path]:
    """Converted folders (default and ``read`` preset) and the LMDB, reused when already in ``work``."""
    paths = {}
    folders = None
    for preset in (DEFAULT_PRESET, READ_PRESET):
        target = work / preset
        if not (target / "bigearthnet_txt" / "patches.parquet").exists():
            out, s2, s1 = convert_replicated(target, n_patches, preset=preset)
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--patches", type=int, default=2000)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    t = time.perf_counter()
    print(build(args.work, args.patches), time.perf_counter() - t)
