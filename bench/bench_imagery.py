"""Imagery conversion benchmark on replicated real sample patches (one run, < 5 minutes).

The three real v1.0 S1/S2 pairs shipped in ``conversion/samples`` are replicated (hard links) to
``--patches`` distinct v2-style patches (S2 folder + S1 folder, v2 layout) with a matching
metadata parquet. Measured in one run on the same patches:

* conversion patches/s: this project's converter (folders; ``.tar.zst``) vs our re-implementation
  of a rico-hdl-style converter (rasterio → safetensors per patch → LMDB,
  ``rico_style_baseline.py``; not rico-hdl's own code), each with 1 and ``--workers`` processes;
* ``.tar.zst`` vs extracted folders (archives built with GNU tar + zstd -6, members sorted);
* store bytes vs the LMDB's bytes, for the ``default`` and the ``size`` codec presets;
* decode speed: random batches of 64 full S1+S2 samples from the store vs from the LMDB.

Every converter gets the same ``--rounds`` conversions of the same patches (rounds alternate over
the converters, so that the load of a shared machine falls on all alike; best round kept); both
readers get the same ``DECODE_ROUNDS`` rounds over the same batches (best kept).

Usage: ``python bench/bench_imagery.py [--patches 1200] [--workers 2] [--rounds 2]
[--out bench/results/imagery.md]``
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import rico_style_baseline as rico
from replicated import replicate

from bigearthnet_txt.conversion.imagery.codecs import DEFAULT_PRESET, PRESETS
from bigearthnet_txt.conversion.imagery.convert import convert_imagery
from bigearthnet_txt.store import ImageryStore


def make_archive(folder: Path, out: Path) -> Path:
    """GNU tar (members sorted, hard links stored as files) piped through ``zstd -6``."""
    with open(out, "wb") as fh:
        tar = subprocess.Popen(
            [
                "tar",
                "--sort=name",
                "--format=gnu",
                "--hard-dereference",
                "-cf",
                "-",
                "-C",
                str(folder.parent),
                folder.name,
            ],
            stdout=subprocess.PIPE,
        )
        subprocess.run(["zstd", "-q", "-6", "-c"], stdin=tar.stdout, stdout=fh, check=True)
        tar.wait()
    return out


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


DECODE_ROUNDS = 3
BASELINE = "rico-style LMDB (our re-implementation)"


def git_commit() -> str:
    """The short commit of the code measured (``git rev-parse --short HEAD``)."""
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parent,
    ).stdout.strip()  # fmt: skip


def best_of(rounds: int, fn) -> float:
    """The shortest of ``rounds`` timed calls of ``fn``."""
    return min(timed(fn) for _ in range(rounds))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patches", type=int, default=1200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--rounds", type=int, default=2, help="conversion rounds per converter (best kept)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "imagery.md"
    )
    args = parser.parse_args()
    n, w = args.patches, args.workers
    work = Path(tempfile.mkdtemp(prefix="bench-imagery-"))
    try:
        s2_root, s1_root, metadata, s2_folders, s1_folders = replicate(work / "src", n)
        s2_tar = make_archive(s2_root, work / "BigEarthNet-S2.tar.zst")
        s1_tar = make_archive(s1_root, work / "BigEarthNet-S1.tar.zst")
        common = {"metadata": [metadata], "all_patches": True, "progress": False}
        converters: dict[str, tuple[Path, object]] = {}

        def ours(name, s2, s1, workers, preset=DEFAULT_PRESET):
            out = work / name.replace(" ", "_").replace(",", "")
            converters[name] = (out, lambda: convert_imagery(
                out, s2=[s2], s1=[s1], workers=workers, preset=preset, **common
            ))  # fmt: skip
            return out

        def baseline(name, workers):
            out = work / name.replace(" ", "_").replace(",", "")
            converters[name] = (out, lambda: [
                rico.convert(s2_folders, out / "s2", workers),
                rico.convert(s1_folders, out / "s1", workers),
            ])  # fmt: skip
            return out

        lmdb_dir = baseline(f"{BASELINE}, 1 process", 1)
        baseline(f"{BASELINE}, {w} processes", w)
        ours("ours folders, 1 process", s2_root, s1_root, 1)
        store_dir = ours(f"ours folders, {w} processes", s2_root, s1_root, w)
        ours("ours .tar.zst, 1 process", s2_tar, s1_tar, 1)
        ours(f"ours .tar.zst, {w} processes", s2_tar, s1_tar, w)
        size_dir = ours(f"ours folders, size preset, {w} processes", s2_root, s1_root, w, "size")
        best = dict.fromkeys(converters, float("inf"))
        for _ in range(args.rounds):  # rounds alternate over the converters: same load for all
            for name, (out, convert) in converters.items():
                shutil.rmtree(out, ignore_errors=True)
                best[name] = min(best[name], timed(convert))
        rows = [(name, n / seconds) for name, seconds in best.items()]
        rate = dict(rows)

        lmdb_total = rico.lmdb_bytes(lmdb_dir / "s2") + rico.lmdb_bytes(lmdb_dir / "s1")
        default_bytes = dir_bytes(store_dir / "imagery.zarr")
        size_bytes = dir_bytes(size_dir / "imagery.zarr")
        preset_bytes = {DEFAULT_PRESET: default_bytes, "size": size_bytes}
        for preset in (p for p in PRESETS if p not in preset_bytes):  # sizes only, not timed
            out = work / f"preset-{preset}"
            convert_imagery(out, s2=[s2_root], s1=[s1_root], workers=w, preset=preset, **common)
            preset_bytes[preset] = dir_bytes(out / "imagery.zarr")
        raw = n * (4 * 120 * 120 * 2 + 6 * 60 * 60 * 2 + 2 * 20 * 20 * 2 + 2 * 120 * 120 * 4)

        rng = np.random.default_rng(0)
        store = ImageryStore(store_dir)
        indices = store.patches["patch_index"].to_numpy()
        batches = [rng.choice(indices, 64, replace=False) for _ in range(20)]
        store_s = best_of(DECODE_ROUNDS, lambda: [store.read(b) for b in batches])
        keys = store.patches["patch_id"].to_pylist()
        s1_keys = store.patches["s1_name"].to_pylist()
        pos = {p: i for i, p in enumerate(store.patches["patch_index"].to_pylist())}
        lmdb_batches = [
            ([keys[pos[i]].encode() for i in b], [s1_keys[pos[i]].encode() for i in b])
            for b in batches
        ]
        lmdb_s = best_of(
            DECODE_ROUNDS,
            lambda: [
                (rico.read_patches(lmdb_dir / "s2", a), rico.read_patches(lmdb_dir / "s1", b))
                for a, b in lmdb_batches
            ],
        )
        decoded = 64 * len(batches)

        base1, basew = rate[f"{BASELINE}, 1 process"], rate[f"{BASELINE}, {w} processes"]
        lines = [
            "# Imagery conversion benchmark",
            "",
            (
                f"{n} replicated real patches (3 real v1 S1/S2 pairs, hard-linked to distinct "
                f"v2-style names), {os.cpu_count()} CPU cores; one run of "
                f"`python bench/bench_imagery.py --patches {n} --workers {w} "
                f"--rounds {args.rounds}` on commit "
                f"{git_commit()}, {datetime.date.today().isoformat()}. The rico-style converter "
                "and reader are our re-implementation of rico-hdl's approach "
                "(`bench/rico_style_baseline.py`), not rico-hdl's code. Every converter gets the "
                f"best of the same {args.rounds} alternating rounds, both readers the best of the "
                f"same {DECODE_ROUNDS} rounds."
            ),
            "",
            "| converter | patches/s (S2 + S1) | vs rico-style, same processes |",
            "|---|---:|---:|",
        ]
        for name, r in rows:
            ref = base1 if "1 process" in name else basew
            lines.append(f"| {name} | {r:.0f} | {r / ref:.2f}× |")
        folders_w, tar_w = (
            rate[f"ours folders, {w} processes"],
            rate[f"ours .tar.zst, {w} processes"],
        )
        folders_1, tar_1 = rate["ours folders, 1 process"], rate["ours .tar.zst, 1 process"]
        lines += [
            "",
            (
                f"* `.tar.zst` vs folders: {tar_1 / folders_1:.2f}× (1 process), "
                f"{tar_w / folders_w:.2f}× ({w} processes)"
            ),
            (
                f"* store bytes vs LMDB bytes: default ({DEFAULT_PRESET}) preset "
                f"{default_bytes / lmdb_total:.3f}×, "
                f"size preset {size_bytes / lmdb_total:.3f}× "
                f"(LMDB {lmdb_total / n / 1024:.1f} KiB/patch, "
                f"raw bands {raw / n / 1024:.1f} KiB/patch, "
                f"default {default_bytes / n / 1024:.1f} KiB/patch, "
                f"size {size_bytes / n / 1024:.1f} KiB/patch)"
            ),
            "* store bytes vs LMDB bytes, every codec preset: "
            + ", ".join(
                f"`{name}` {nbytes / lmdb_total:.3f}×" for name, nbytes in preset_bytes.items()
            ),
            (
                f"* decode, random batches of 64 full S1+S2 samples, 1 process, best of "
                f"{DECODE_ROUNDS}: store {decoded / store_s:.0f} samples/s, rico-style "
                f"LMDB+safetensors {decoded / lmdb_s:.0f} samples/s"
            ),
            "",
            (
                "Note: the replicated patches repeat three real patches, so zstd inside a shard "
                "sees no cross-patch"
            ),
            (
                "redundancy only because every patch is its own chunk; the ratios match the "
                "per-patch codec ratios"
            ),
            "measured on the distinct sample patches (see `conversion/imagery/codecs.py`).",
        ]
        text = "\n".join(lines) + "\n"
        print(text)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
