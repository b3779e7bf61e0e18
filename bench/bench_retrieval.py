"""Retrieval metrics: time and peak memory of a scaled run, projected to the test split.

    python bench/bench_retrieval.py [--images 116000] [--texts 2048 8192] [--dim 256]
                                    [--device cpu] [--out bench/results/retrieval.md]

Each setting runs in a fresh subprocess (random float32 embeddings, ``retrieval_metrics`` with the
default 256 MiB blocks) that reports its wall time and peak resident memory. The work is two
matmul passes over ``T × P`` scores, linear in ``T`` at fixed ``P``: the time of the test split's
captions (≈ 116 k texts × 116 k patches) and of all its texts (≈ 2.4 M × 116 k) is projected
from the largest measured ``T`` (the measured settings show how linear it is). Memory: the measured
peak of the scaled run, and the projection = that peak + the extra embedding rows
(``(T_full − T) × D × 4`` bytes) + the ranks (``8`` bytes per text): the score blocks stay bounded.
The anchor of the ratios is a brute-force ``T × P`` score matrix held whole (what an unblocked
computation needs): its bytes are given for comparison.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

FULL = {"captions (116 k × 116 k)": 116_000, "all texts (2.4 M × 116 k)": 2_400_000}

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from bigearthnet_txt.retrieval import retrieval_metrics
t, p, d, device, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], 0
rng = np.random.default_rng(seed)
text = rng.standard_normal((t, d), dtype=np.float32)
image = rng.standard_normal((p, d), dtype=np.float32)
patch = rng.integers(0, p, size=t)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
m = retrieval_metrics(text, image, patch, device=device)
if device != "cpu":
    torch.cuda.synchronize()
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
gpu_peak = torch.cuda.max_memory_allocated() if device != "cpu" else 0
print(json.dumps({"seconds": seconds, "peak_rss": peak, "gpu_peak": gpu_peak,
                  "threads": torch.get_num_threads(), "mR": m["mR"]}))
"""


def run(texts: int, images: int, dim: int, device: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(texts), str(images), str(dim), device],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=116_000)
    parser.add_argument("--texts", type=int, nargs="+", default=[2048, 8192])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    for t in args.texts:
        r = run(t, args.images, args.dim, args.device)
        rows.append((t, r))
        print(f"T={t}: {r['seconds']:.2f} s, peak RSS {gib(r['peak_rss'])}", flush=True)
    t_ref, ref = rows[-1]
    per_text = ref["seconds"] / t_ref
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()  # fmt: skip
    lines = [
        "# Retrieval metrics: time and peak memory\n",
        f"Command: `python bench/bench_retrieval.py --images {args.images} --texts "
        f"{' '.join(map(str, args.texts))} --dim {args.dim} --device {args.device}`  ",
        f"Commit: {commit}; date: {datetime.date.today().isoformat()}; device: {args.device}, "
        f"{ref['threads']} torch threads (a shared 2-core machine)\n",
        f"Measured ({args.images} images, D = {args.dim}, float32, 256 MiB score blocks; each in a "
        "fresh process):\n",
        "| texts T | seconds | s per 1 k texts | peak RSS |",
        "|---:|---:|---:|---:|",
    ]
    for t, r in rows:
        lines.append(f"| {t} | {r['seconds']:.2f} | {1000 * r['seconds'] / t:.3f} | "
                     f"{gib(r['peak_rss'])} |")  # fmt: skip
    lines += [
        "",
        f"Projected from T = {t_ref} (time linear in T at fixed P; memory = measured peak + extra "
        "embedding rows + 8 B ranks per text; the score blocks stay at 256 MiB):\n",
        "| setting | projected time | projected peak memory | whole score matrix (unblocked) |",
        "|---|---:|---:|---:|",
    ]
    for name, t_full in FULL.items():
        memory = ref["peak_rss"] + (t_full - t_ref) * (args.dim * 4 + 8)
        whole = t_full * args.images * 4
        lines.append(f"| {name} | {per_text * t_full / 60:.1f} min | {gib(memory)} | "
                     f"{gib(whole)} ({whole / memory:.0f}× the blocked peak) |")  # fmt: skip
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
