"""Annotation conversion at the release's size: rows/s and peak memory.

Generates (once, cached under ``bench/work/``) a synthetic ``BigEarthNet.txt.parquet`` with the
release's size and layout (9,553,962 rows, 464,044 patches, 78 row groups; realistic templates,
see ``bigearthnet_txt.conversion.synthetic``), converts it in a child process and reports wall time, rows/s
(overall and per stage) and the child's peak RSS. Target: peak RSS under 4 GB.

    python bench/bench_annotations.py [--rows N] [--patches N]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
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
import json, sys, time
from bigearthnet_txt.conversion.annotations import convert_annotations, AnnotationSettings
t = time.perf_counter()
s = convert_annotations(sys.argv[1], sys.argv[2], AnnotationSettings(), progress=False, overwrite=True)
print(json.dumps({"seconds": time.perf_counter() - t, "files": len(s.files), "rows": s.rows}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=FULL_ROWS)
    parser.add_argument("--patches", type=int, default=FULL_PATCHES)
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "annotations.md")
    args = parser.parse_args()

    source = args.work / f"BigEarthNet.txt.synthetic-{args.rows}.parquet"
    if not source.exists():
        t = time.perf_counter()
        groups = max(1, round(FULL_ROW_GROUPS * args.rows / FULL_ROWS))
        write_full_size(source, rows=args.rows, patches=args.patches, row_groups=groups)
        print(f"generated {source} in {time.perf_counter() - t:.0f} s")
    meta = pq.ParquetFile(source).metadata
    out = args.work / "annotations-out"
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), str(out)], capture_output=True, text=True
    )
    wall = time.perf_counter() - t
    if proc.returncode:
        sys.exit(proc.stderr)
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB on Linux
    rows = meta.num_rows
    lines = [
        "# Annotation conversion at full size",
        "",
        f"Input: synthetic release file, {rows:,} rows, {meta.num_row_groups} row groups, "
        f"{source.stat().st_size / 1e6:.0f} MB.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| wall time (child process) | {wall:.1f} s |",
        f"| rows/s | {rows / child['seconds']:,.0f} |",
        f"| output files | {child['files']} |",
        f"| peak RSS | {peak_gb:.2f} GB (target < 4 GB) |",
        "",
        "Conversion includes validation, parsing, sorting by patch, the redundancy weights of "
        "every patch group and writing the per-task Parquet shards.",
    ]
    text = "\n".join(lines)
    print(text)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text + "\n")


if __name__ == "__main__":
    main()
