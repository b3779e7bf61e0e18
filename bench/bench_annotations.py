"""Annotation conversion at the release's size: rows/s and peak memory.

Generates (once, cached under ``bench/work/``) a synthetic ``BigEarthNet.txt.parquet`` with the
release's size and layout (9,553,962 rows, 464,044 patches, 78 row groups; realistic templates,
see ``bigearthnet_txt.conversion.synthetic``), converts it in a child process and reports wall
time, rows/s and the peak RSS.

    python bench/bench_annotations.py [--rows N] [--patches N] [--workers N] [--results FILE]

``--workers 2,1`` converts the same file once per count, one after the other, on that many
processes (``convert_annotations(..., workers=N)``), reports each run and its speed-up over the
one-process run, and checks that every output file is byte-identical between runs. Peak memory is
the largest resident set of one process, and the largest sum over the conversion process and its
workers, sampled every 0.2 s; CPU time is that of the conversion process and its workers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from bigearthnet_txt.conversion.synthetic import (
    FULL_PATCHES,
    FULL_ROW_GROUPS,
    FULL_ROWS,
    write_full_size,
)

HERE = Path(__file__).resolve().parent
CHILD = """
import json, os, resource, sys, threading, time
from bigearthnet_txt.conversion.annotations import convert_annotations, AnnotationSettings

def tree_rss():
    me = os.getpid()
    try:
        kids = open(f"/proc/{me}/task/{me}/children").read().split()
    except OSError:
        kids = []
    total = 0
    for pid in [me, *map(int, kids)]:
        try:
            total += sum(int(l.split()[1]) * 1024 for l in open(f"/proc/{pid}/status")
                         if l.startswith("VmRSS:"))
        except OSError:
            pass
    return total

if __name__ == "__main__":
    peak, done = [0], threading.Event()
    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss())
            time.sleep(0.2)
    threading.Thread(target=sample, daemon=True).start()
    t = time.perf_counter()
    s = convert_annotations(sys.argv[1], sys.argv[2], AnnotationSettings(), progress=False,
                            overwrite=True, workers=int(sys.argv[3]))
    seconds = time.perf_counter() - t
    done.set()
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    own, workers = me.ru_maxrss * 1024, kids.ru_maxrss * 1024  # KiB on Linux
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime  # workers have exited
    print(json.dumps({"seconds": seconds, "files": len(s.files), "rows": s.rows, "cpu": cpu,
                      "peak_tree_bytes": peak[0], "peak_process_bytes": max(own, workers)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=FULL_ROWS)
    parser.add_argument("--patches", type=int, default=FULL_PATCHES)
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument(
        "--workers", default="2,1", help="comma-separated process counts, run in this order"
    )
    parser.add_argument("--results", type=Path, default=HERE / "results" / "annotations.md")
    args = parser.parse_args()

    source = args.work / f"BigEarthNet.txt.synthetic-{args.rows}.parquet"
    if not source.exists():
        t = time.perf_counter()
        groups = max(1, round(FULL_ROW_GROUPS * args.rows / FULL_ROWS))
        write_full_size(source, rows=args.rows, patches=args.patches, row_groups=groups)
        print(f"generated {source} in {time.perf_counter() - t:.0f} s")
    meta = pq.ParquetFile(source).metadata
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=HERE).stdout.strip()  # fmt: skip
    counts = [int(w) for w in args.workers.split(",")]
    script = args.work / "convert_child.py"  # a file: worker processes re-import the main module
    script.write_text(CHILD)
    runs, digests = {}, {}
    for workers in counts:
        out = args.work / f"annotations-out-{workers}"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(script), str(source), str(out), str(workers)],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - t
        if proc.returncode:
            sys.exit(proc.stderr)
        runs[workers] = {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall": wall}
        digests[workers] = {
            str(f.relative_to(out)): hashlib.md5(f.read_bytes()).hexdigest()
            for f in sorted(out.rglob("*.parquet"))
        }
        shutil.rmtree(out)
        print(f"workers={workers}: {wall:.1f} s", flush=True)
    identical = all(d == digests[counts[0]] for d in digests.values())
    rows = meta.num_rows
    base = runs[1]["seconds"] if 1 in runs else None

    def speedup(r: dict) -> str:
        return f"{base / r['seconds']:.2f}×" if base else "—"

    lines = [
        "# Annotation conversion at full size",
        "",
        f"Input: synthetic release file, {rows:,} rows, {meta.num_row_groups} row groups, "
        f"{source.stat().st_size / 1e6:.0f} MB. Command: `python bench/bench_annotations.py "
        f"--rows {args.rows} --workers {args.workers}`, commit `{commit}`, {date.today()}, "
        f"{os.cpu_count()} CPU cores; the runs follow each other in one invocation.",
        "",
        "| worker processes | wall s (child process) | CPU s, process + workers | rows/s | "
        "vs 1 process | peak RSS, one process | peak RSS, process + workers | output files |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[
            f"| {w} | {r['wall']:.1f} | {r['cpu']:.1f} | {rows / r['seconds']:,.0f} | "
            f"{speedup(r)} | "
            f"{r['peak_process_bytes'] / 1e9:.2f} GB | {r['peak_tree_bytes'] / 1e9:.2f} GB | "
            f"{r['files']} |"
            for w, r in runs.items()
        ],
        "",
        "Output files of all runs byte-identical (md5 of every Parquet file): "
        f"**{'yes' if identical else 'NO'}** ({len(digests[counts[0]])} files). Conversion "
        "includes validation, parsing, sorting by patch, the redundancy weights of every patch "
        "group and writing the per-task Parquet shards. CPU s: user + system time of the "
        "conversion process and its worker processes; on a machine whose cores other jobs share, "
        "the wall time of the parallel run exceeds CPU s / workers.",
    ]
    text = "\n".join(lines)
    print(text)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text + "\n")
    if not identical:
        sys.exit("outputs differ between worker counts")


if __name__ == "__main__":
    main()
