"""Codec choice: Blosc settings on every real sample band file, ratio and write/read speed.

Each S2 (uint16) and S1 (float32 dB) band of the real v2 and v1 sample patches
(``bigearthnet_txt.conversion.sample_data``) is compressed as one chunk with each candidate
``numcodecs.Blosc`` setting, one thread, best of ``--rounds``. Ratio = compressed / raw bytes;
MB/s of raw data. Writes ``bench/results/codecs.md``.

    python bench/bench_codecs.py [--rounds 5] [--out bench/results/codecs.md]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from datetime import date
from pathlib import Path

import numcodecs
import numpy as np
import tifffile
from numcodecs import Blosc

from bigearthnet_txt.conversion.sample_data import SAMPLES_DIR

HERE = Path(__file__).resolve().parent
#: (label, cname, level, shuffle); the presets' settings are named in the label.
CANDIDATES = (
    ("zstd 3, byte shuffle (`balanced`)", "zstd", 3, Blosc.SHUFFLE),
    ("zstd 9, byte shuffle (`size`, here without its uint16 Delta)", "zstd", 9, Blosc.SHUFFLE),
    ("lz4hc 9, byte shuffle", "lz4hc", 9, Blosc.SHUFFLE),
    ("lz4hc 6, byte shuffle (`speed`; `write`, S1)", "lz4hc", 6, Blosc.SHUFFLE),
    ("lz4 9, bit shuffle (`write`, S2)", "lz4", 9, Blosc.BITSHUFFLE),
    ("lz4 9, byte shuffle", "lz4", 9, Blosc.SHUFFLE),
    ("lz4hc 1, bit shuffle", "lz4hc", 1, Blosc.BITSHUFFLE),
)


def band_arrays() -> dict[str, list[np.ndarray]]:
    """The sample bands: ``{"S2": [uint16 arrays], "S1": [float32 arrays]}``."""
    bands: dict[str, list[np.ndarray]] = {"S2": [], "S1": []}
    for path in sorted(SAMPLES_DIR.rglob("*.tif*")):
        array = tifffile.imread(path)
        if array.dtype == np.uint16 and "_B" in path.stem:
            bands["S2"].append(array)
        elif array.dtype == np.float32:
            bands["S1"].append(array)
    return bands


def measure(arrays: list[np.ndarray], codec: Blosc, rounds: int) -> tuple[float, float, float]:
    """``(ratio, write MB/s, read MB/s)`` of ``codec`` over ``arrays`` (best of ``rounds``)."""
    raw = sum(a.nbytes for a in arrays)
    encoded = [codec.encode(a) for a in arrays]
    ratio = sum(len(e) for e in encoded) / raw
    write = read = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for a in arrays:
            codec.encode(a)
        write = min(write, time.perf_counter() - start)
        start = time.perf_counter()
        for e, a in zip(encoded, arrays, strict=True):
            codec.decode(e, out=np.empty_like(a))
        read = min(read, time.perf_counter() - start)
    return ratio, raw / write / 1e6, raw / read / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "codecs.md")
    args = parser.parse_args()
    numcodecs.blosc.set_nthreads(1)
    bands = band_arrays()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=HERE,
        check=False,
    ).stdout.strip()
    lines = [
        "# Codec choice (per band file of the real samples)",
        "",
        f"`python bench/bench_codecs.py --rounds {args.rounds}`, commit `{commit}`, "
        f"{date.today()}; numcodecs {numcodecs.__version__} Blosc, one thread, best of "
        f"{args.rounds}. {len(bands['S2'])} S2 band files (uint16), {len(bands['S1'])} S1 band "
        "files (float32 dB). "
        "Ratio = compressed / raw bytes; MB/s of raw data.",
        "",
        "| codec | S2 ratio | S2 write | S2 read | S1 ratio | S1 write | S1 read |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, cname, level, shuffle in CANDIDATES:
        codec = Blosc(cname=cname, clevel=level, shuffle=shuffle)
        s2 = measure(bands["S2"], codec, args.rounds)
        s1 = measure(bands["S1"], codec, args.rounds)
        lines.append(
            f"| {label} | {s2[0]:.3f} | {s2[1]:,.0f} | {s2[2]:,.0f} | "
            f"{s1[0]:.3f} | {s1[1]:,.0f} | {s1[2]:,.0f} |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        "Store-level ratios of every preset against the LMDB (per-patch chunks, all arrays) are in "
        "`imagery.md`.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
