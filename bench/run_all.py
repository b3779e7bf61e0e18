"""Regenerate every ``bench/results`` file with one command, each stamped with its provenance.

Usage: ``python bench/run_all.py [--only NAME ...] [--list]``

Each benchmark runs in its own process, one after the other (they would otherwise compete for the
CPUs). After a run, every results file it wrote gets a line under its title naming the command,
the git commit of the code that produced it, the date and the machine, so every figure the README
quotes can be traced to the code that made it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its command line (script and arguments) and the results files it writes."""

    name: str
    command_line: str
    outputs: tuple[str, ...]

    @property
    def args(self) -> list[str]:
        return shlex.split(self.command_line)

    @property
    def command(self) -> str:
        return f"python {self.command_line}"


BENCHMARKS = (
    Benchmark("redundancy", "bench/bench_redundancy.py", ("redundancy.md",)),
    Benchmark("annotations", "bench/bench_annotations.py --workers 2,1", ("annotations.md",)),
    Benchmark("codecs", "bench/bench_codecs.py --rounds 5", ("codecs.md",)),
    Benchmark(
        "imagery", "bench/bench_imagery.py --patches 1200 --workers 2 --rounds 2", ("imagery.md",)
    ),
    Benchmark(
        "reads",
        "bench/reads.py --patches 10000 --random 6000 --rounds 7 --work bench/work/reads",
        ("reads.md",),
    ),
    Benchmark("collate", "bench/bench_collate.py", ("collate.md",)),
    Benchmark(
        "sampler",
        "bench/bench_sampler.py --patches 512 --rounds 3 --out bench/results/sampler.md",
        ("sampler.md",),
    ),
    Benchmark(
        "retrieval",
        "bench/bench_retrieval.py --images 116000 --texts 1024 4096 --dim 256 "
        "--out bench/results/retrieval.md",
        ("retrieval.md",),
    ),
    Benchmark(
        "wfa",
        "bench/wfa_example.py --steps 30 --seed 0 --out bench/results/wfa_example.md",
        ("wfa_example.md",),
    ),
    Benchmark(
        "dask",
        "bench/dry_run.py --fraction 0.004 --workers 1,2 --layouts archives,folders",
        ("dask.md",),
    ),
    Benchmark(
        "examples",
        "bench/show_evaluate_examples.py",
        ("evaluate_example.md", "evaluate_comparison.md"),
    ),
)


def git_commit() -> str:
    """Short commit of the checkout, with ``+changes`` when tracked files differ from it."""

    def run(*a):
        return subprocess.run(
            ["git", *a], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = run("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results")
    return run("rev-parse", "--short", "HEAD") + ("+changes" if dirty else "")


def provenance(bench: Benchmark, seconds: float) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    return (
        f"Produced by `{bench.command}` (part of `python bench/run_all.py`, {seconds:.0f} s) "
        f"on commit {git_commit()}, {when}; {machine}."
    )


def stamp(path: Path, line: str) -> None:
    """Put ``line`` under the Markdown title of ``path`` (replacing an earlier stamp)."""
    lines = [x for x in path.read_text().splitlines() if not x.startswith("Produced by `")]
    at = 1 if lines and lines[0].startswith("# ") else 0
    lines[at:at] = ["", line] if at else [line, ""]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHMARKS])
    parser.add_argument("--list", action="store_true", help="print the commands and exit")
    args = parser.parse_args(argv)
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    if args.list:
        print("\n".join(f"{b.name}: {b.command}" for b in chosen))
        return 0
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    for bench in chosen:
        print(f"[{bench.name}] {bench.command}", flush=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, *bench.args], cwd=ROOT, env=env, check=True)
        line = provenance(bench, time.perf_counter() - start)
        for name in bench.outputs:
            if name.endswith(".md"):
                stamp(RESULTS / name, line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
