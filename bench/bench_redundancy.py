"""Throughput of the BLEU redundancy weights against a loop over ``sacrebleu.sentence_bleu``.

Both run in the same process on the same synthetic BigEarthNet.txt-like texts (~21 per patch,
``bigearthnet_txt.conversion.synthetic.templated_texts``). The sacrebleu loop runs on a subset
of the patches (it is slow); the results agree to 1e-6 on that subset. Writes
``bench/results/redundancy.md``.

    .venv/bin/python bench/bench_redundancy.py [--patches 20000] [--loop-patches 150]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import sacrebleu

from bigearthnet_txt.conversion.synthetic import templated_texts
from bigearthnet_txt.redundancy import uniqueness_batch, weights_batch

FULL_ROWS = 9_553_962
RESULTS = Path(__file__).resolve().parent / "results" / "redundancy.md"


def sacrebleu_loop(texts: list[str], patch_ids: list[str]) -> np.ndarray:
    """``1 - sentence_bleu(t_i, other texts of the patch) / 100`` for every text."""
    members: dict[str, list[int]] = {}
    for i, p in enumerate(patch_ids):
        members.setdefault(p, []).append(i)
    out = np.ones(len(texts))
    for rows in members.values():
        for i in rows:
            refs = [texts[j] for j in rows if j != i]
            if refs:
                out[i] = 1.0 - sacrebleu.sentence_bleu(texts[i], refs).score / 100.0
    return out


def best_of(repeats: int, fn, *args) -> tuple[float, float, object]:
    """``(best CPU seconds, best wall seconds, result)`` of ``repeats`` calls of ``fn(*args)``."""
    cpu, wall, result = float("inf"), float("inf"), None
    for _ in range(repeats):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        result = fn(*args)
        cpu = min(cpu, time.process_time() - start_cpu)
        wall = min(wall, time.perf_counter() - start_wall)
    return cpu, wall, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--patches", type=int, default=20_000, help="patches for our implementation"
    )
    parser.add_argument(
        "--loop-patches", type=int, default=150, help="patches for the sacrebleu loop"
    )
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    texts, patch_ids = templated_texts(args.patches, seed=0)
    first_patches = set(list(dict.fromkeys(patch_ids))[: args.loop_patches])
    chosen = [i for i, p in enumerate(patch_ids) if p in first_patches]
    loop_texts, loop_ids = [texts[i] for i in chosen], [patch_ids[i] for i in chosen]
    n_loop = len(chosen)

    uniqueness_batch(loop_texts[:100], loop_ids[:100])
    loop_cpu, loop_wall, reference = best_of(args.repeats, sacrebleu_loop, loop_texts, loop_ids)
    small_cpu, small_wall, ours_small = best_of(
        args.repeats, uniqueness_batch, loop_texts, loop_ids
    )
    max_err = float(np.abs(ours_small - reference).max())
    ours_cpu, ours_wall, _ = best_of(args.repeats, weights_batch, texts, patch_ids)

    loop_rate = n_loop / loop_cpu
    ours_rate = len(texts) / ours_cpu
    ratio = ours_rate / loop_rate
    projected = FULL_ROWS / ours_rate
    rows = [
        (
            "sacrebleu `sentence_bleu` loop",
            n_loop,
            loop_cpu,
            loop_wall,
            f"{FULL_ROWS / loop_rate / 3600:.1f} h",
        ),
        (
            "`uniqueness_batch`, same rows",
            n_loop,
            small_cpu,
            small_wall,
            f"{FULL_ROWS / (n_loop / small_cpu):.0f} s",
        ),
        ("`weights_batch`", len(texts), ours_cpu, ours_wall, f"{projected:.0f} s"),
    ]
    table = [
        "| implementation | texts | CPU s | wall s | texts/s (CPU) | 9,553,962 rows |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    table += [
        f"| {name} | {n:,} | {cpu:.3f} | {wall:.3f} | {n / cpu:,.0f} | {full} |"
        for name, n, cpu, wall, full in rows
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    report = "\n".join(
        [
            "# BLEU redundancy weights: throughput",
            "",
            f"Synthetic BigEarthNet.txt-like texts, {len(texts) / args.patches:.1f} "
            "texts per patch, "
            f"{len(set(texts)) / len(texts):.0%} distinct; groups = patches.",
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, numpy {np.__version__}, "
            f"sacrebleu {sacrebleu.__version__}; "
            f"1-min load average at the end {load:.1f} (the CPUs are shared).",
            f"Best of {args.repeats} runs for ours and for the sacrebleu loop alike; "
            "both in the same process, "
            "single-threaded. Rates use process CPU time, which other users of the shared CPUs "
            "inflate less than wall time; on an idle core the two agree.",
            "",
            *table,
            "",
            f"**Speed-up: {ratio:.0f}x** the sacrebleu loop (CPU time); "
            "projected time for all 9,553,962 rows: "
            f"**{projected:.0f} s ({projected / 60:.1f} min)** of one core.",
            f"Largest difference from sacrebleu on the shared rows: {max_err:.1e}.",
            "",
            "Command: `.venv/bin/python bench/bench_redundancy.py "
            f"--patches {args.patches} --loop-patches {args.loop_patches} "
            f"--repeats {args.repeats}`",
            "",
        ]
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
