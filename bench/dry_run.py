"""Full-path dry run on Dask: synthetic archives → imagery store + annotation tables, 1 and 2
workers, with throughput, peak memory per worker and the projected time for the real release.

The archive set (``bench/synthetic_archives.py``) has the release's layout and a ``--fraction`` of
its annotated patches and rows, made of the real sample GeoTIFFs. Each run starts a fresh
``LocalCluster`` of single-threaded worker processes and runs what
``bigearthnet-txt convert --engine dask --workers N`` runs: the imagery passes (S2, S1, reference
maps) as per-shard tasks, then the annotation tables with one redundancy task per bucket (buckets
scaled so that their count is the release's). Both source layouts are measured: the ``.tar.zst``
archives (streamed by the client) and the extracted folders (read by the workers). The report goes
to ``bench/results/dask.md``.

    python bench/dry_run.py [--fraction 0.004] [--workers 1,2] [--layouts archives,folders]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import math
import platform
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bigearthnet_txt.conversion.annotations import AnnotationSettings, convert_annotations
from bigearthnet_txt.conversion.dask_engine.annotations import DaskBucketWeigher
from bigearthnet_txt.conversion.dask_engine.cluster import open_client
from bigearthnet_txt.conversion.dask_engine.imagery import DaskExecutor
from bigearthnet_txt.conversion.imagery import convert as convert_module
from bigearthnet_txt.conversion.imagery.codecs import DEFAULT_PRESET, DEFAULT_SHARD_SIZE
from bigearthnet_txt.conversion.imagery.convert import convert_imagery, patch_index_map
from bigearthnet_txt.conversion.imagery.sources import iter_archive
from bigearthnet_txt.conversion.synthetic import FULL_PATCHES, FULL_ROWS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_archives import ArchiveSet, make_archive_set

HERE = Path(__file__).resolve().parent
RELEASE_PATCHES = 549_488  # every S2 patch of BigEarthNet v2.0 (the annotations use 464,044)
RELEASE_BUCKETS = math.ceil(FULL_PATCHES / AnnotationSettings().patches_per_bucket)
PROJECTED_WORKERS = (1, 2, 8, 32, 128)


@dataclass
class Run:
    """One conversion of the set on ``workers`` workers."""

    workers: int
    pass_seconds: dict[str, float] = field(default_factory=dict)
    imagery_seconds: float = 0.0
    annotation_serial_seconds: float = 0.0  # scan + spill, on the client
    annotation_parallel_seconds: float = 0.0  # bucket weights (tasks) + writing the files
    worker_peak_rss: list[int] = field(default_factory=list)
    client_peak_rss: int = 0

    @property
    def total_seconds(self) -> float:
        return (
            self.imagery_seconds + self.annotation_serial_seconds + self.annotation_parallel_seconds
        )


@contextlib.contextmanager
def _timed_passes(seconds: dict[str, float]):
    """Record each pass's duration: the conversion's pass runner, wrapped for the duration."""
    run_pass = convert_module.run_pass

    def timed(spec, *args, **kwargs):
        start = time.perf_counter()
        run_pass(spec, *args, **kwargs)
        seconds[spec.name] = time.perf_counter() - start

    convert_module.run_pass = timed
    try:
        yield
    finally:
        convert_module.run_pass = run_pass


class _TimedWeigher:
    """A bucket weigher recording when weighing starts (the end of scan and spill)."""

    def __init__(self, weigher):
        self.weigher, self.started = weigher, None

    def __call__(self, buckets, settings):
        self.started = time.perf_counter()
        return self.weigher(buckets, settings)


class _PeakRss:
    """Samples this process's resident memory in a thread."""

    def __init__(self):
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        me = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, me.memory_info().rss)
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _start_rss_sampler(dask_worker) -> None:
    """In a worker: sample its process's resident memory every 0.1 s (peak kept on the worker)."""
    peak = {"rss": 0}
    dask_worker.dry_run_peak_rss = peak

    def sample() -> None:
        me = psutil.Process()
        while True:
            peak["rss"] = max(peak["rss"], me.memory_info().rss)
            time.sleep(0.1)

    threading.Thread(target=sample, daemon=True).start()


def _worker_peak_rss(dask_worker) -> int:
    return dask_worker.dry_run_peak_rss["rss"]


def convert_once(data: ArchiveSet, layout: str, out: Path, workers: int) -> Run:
    """Convert ``data`` from its ``layout`` sources into ``out`` on a new LocalCluster."""
    shutil.rmtree(out, ignore_errors=True)
    run = Run(workers)
    sources = data.sources(layout)
    settings = AnnotationSettings(
        rows_per_shard=max(1_000, round(250_000 * data.n_rows / FULL_ROWS)),
        patches_per_bucket=max(1, math.ceil(data.n_patches / RELEASE_BUCKETS)),
    )
    with (
        open_client(None, workers) as client,
        _PeakRss() as client_rss,
        _timed_passes(run.pass_seconds),
    ):
        client.run(_start_rss_sampler)
        start = time.perf_counter()
        convert_imagery(
            out, s2=[sources["s2"]], s1=[sources["s1"]], reference_maps=[sources["reference_maps"]],
            metadata=[data.metadata], annotations=[data.annotations], progress=False,
            executor=DaskExecutor(client),
        )  # fmt: skip
        run.imagery_seconds = time.perf_counter() - start
        patch_index = patch_index_map(out)
        weigher = _TimedWeigher(DaskBucketWeigher(client))
        start = time.perf_counter()
        convert_annotations(
            data.annotations, out, settings, patch_index=patch_index, progress=False, weigh=weigher
        )
        end = time.perf_counter()
        run.annotation_serial_seconds = weigher.started - start
        run.annotation_parallel_seconds = end - weigher.started
        run.worker_peak_rss = sorted(client.run(_worker_peak_rss).values())
    run.client_peak_rss = client_rss.peak
    return run


def stream_rate(archives: dict[str, Path]) -> float:
    """Patches per second the client alone streams out of the S2 and S1 archives (no decoding)."""
    start = time.perf_counter()
    count = sum(1 for kind in ("s2", "s1") for _ in iter_archive(archives[kind]))
    return count / 2 / (time.perf_counter() - start)


def project(runs: dict[int, Run], data: ArchiveSet, stream: float | None) -> list[tuple]:
    """Release time per worker count: per-worker rates of the 1-worker run, times N, times the
    1 → 2 efficiency; archives: never faster than the client's stream; scan+spill stay serial."""
    one, two = runs[1], runs.get(2)
    efficiency = min(1.0, one.total_seconds / (2 * two.total_seconds)) if two else 1.0
    patch_scale = RELEASE_PATCHES / data.n_patches
    row_scale = FULL_ROWS / data.n_rows
    rows = []
    for n in PROJECTED_WORKERS:
        speedup = 1 if n == 1 else n * efficiency
        imagery = one.imagery_seconds * patch_scale / speedup
        if stream:
            imagery = max(imagery, RELEASE_PATCHES / stream)
        tables = (
            one.annotation_serial_seconds * row_scale
            + one.annotation_parallel_seconds * row_scale / speedup
        )
        rows.append((n, imagery, tables))
    return rows


def _hms(seconds: float) -> str:
    h, rest = divmod(round(seconds), 3600)
    return f"{h} h {rest // 60:02d} min" if h else f"{rest // 60} min {rest % 60:02d} s"


def _layout_section(
    data: ArchiveSet, layout: str, runs: dict[int, Run], stream: float | None
) -> list[str]:
    mib = 1 << 20
    sizes = ", ".join(f"{k} {v / mib:.1f} MiB" for k, v in data.size(layout).items())
    lines = [
        f"## Sources: {layout} ({sizes})",
        "",
        (
            "| workers | imagery s | S2 / S1 / ref. map pass s | patches/s "
            "| annotations s (scan+spill / weigh+write) | rows/s | total s "
            "| peak RSS per worker MiB | client peak RSS MiB |"
        ),
        "|---:|---:|---|---:|---|---:|---:|---|---:|",
    ]
    for n, r in sorted(runs.items()):
        passes = " / ".join(
            f"{r.pass_seconds.get(p, 0):.1f}" for p in ("s2", "s1", "reference_map")
        )
        tables = r.annotation_serial_seconds + r.annotation_parallel_seconds
        lines.append(
            f"| {n} | {r.imagery_seconds:.1f} | {passes} "
            f"| {data.n_patches / r.imagery_seconds:.0f} "
            f"| {tables:.1f} ({r.annotation_serial_seconds:.1f} "
            f"/ {r.annotation_parallel_seconds:.1f}) "
            f"| {data.n_rows / tables:,.0f} | {r.total_seconds:.1f} "
            f"| {', '.join(f'{b / mib:.0f}' for b in r.worker_peak_rss)} "
            f"| {r.client_peak_rss / mib:.0f} |"
        )
    if 1 in runs and 2 in runs:
        one, two = runs[1], runs[2]
        lines += [
            "",
            (
                f"Speed-up 1 → 2 workers: {one.total_seconds / two.total_seconds:.2f}× overall, "
                f"{one.imagery_seconds / two.imagery_seconds:.2f}× imagery, "
                f"{one.annotation_parallel_seconds / two.annotation_parallel_seconds:.2f}× "
                "weigh+write."
            ),
        ]
    if stream:
        lines += [
            "",
            (
                f"The client alone streams {stream:.0f} patches/s out of the S2 and S1 archives "
                "(zstd + tar, no decoding): the bound of any cluster reading the monolithic "
                "archives."
            ),
        ]
    lines += [
        "",
        f"Projected for the release ({RELEASE_PATCHES:,} patches, {FULL_ROWS:,} rows):",
        "",
        "| workers | imagery | annotations | total |",
        "|---:|---:|---:|---:|",
    ]
    for n, imagery, tables in project(runs, data, stream):
        lines.append(f"| {n} | {_hms(imagery)} | {_hms(tables)} | {_hms(imagery + tables)} |")
    return [*lines, ""]


def _git_commit() -> str:
    """The short commit of the code measured."""
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
        cwd=HERE,
    ).stdout.strip()  # fmt: skip


def report(data: ArchiveSet, results: dict[str, tuple], args, generate_s: float) -> str:
    lines = [
        "# Dask engine: full-path dry run and scaling",
        "",
        (
            f"`python bench/dry_run.py --fraction {args.fraction} --workers {args.workers} "
            f"--layouts {args.layouts}` on {platform.machine()} with {psutil.cpu_count()} "
            "CPU cores "
            "shared with other work (the client process competes with the workers for them); "
            "a fresh LocalCluster of single-threaded worker processes per run; commit "
            f"{_git_commit()}, {datetime.date.today().isoformat()}; store codecs: the default "
            f"preset `{DEFAULT_PRESET}`, {DEFAULT_SHARD_SIZE} patches per shard."
        ),
        "",
        (
            f"Data: {data.n_patches:,} patches (S2 + S1 + reference map each) and {data.n_rows:,} "
            f"annotation rows = {args.fraction:g} of the release, the real sample GeoTIFFs "
            f"replicated under synthetic names (generated in {generate_s:.0f} s); "
            f"{RELEASE_BUCKETS} annotation buckets, as in the release. Projections: per-worker "
            "rates of the 1-worker run scaled to the release, N workers at the measured 1 → 2 "
            "efficiency (at most 1), annotation scan+spill serial on the client, imagery from "
            "archives never faster than the client's stream."
        ),
        "",
        (
            "Not modelled: the bandwidth of the shared file system or object store (the release "
            "reads 118 GB of archives or the band files, and writes the store) and the scheduler's "
            "per-task cost (about 2,150 shard tasks per pass, a few ms each). On this 2-core "
            "machine the 1 → 2 efficiency is a lower bound: the second worker shares the cores "
            "with the client and other jobs."
        ),
        "",
    ]
    for layout, (runs, stream) in results.items():
        lines += _layout_section(data, layout, runs, stream)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fraction", type=float, default=0.004, help="share of the release (default %(default)s)"
    )
    parser.add_argument(
        "--workers", default="1,2", help="comma-separated worker counts (default %(default)s)"
    )
    parser.add_argument(
        "--layouts",
        default="archives,folders",
        help="archives, folders or both (default %(default)s)",
    )
    parser.add_argument("--work", type=Path, default=HERE / "work" / "dry-run")
    parser.add_argument("--report", type=Path, default=HERE / "results" / "dask.md")
    args = parser.parse_args()
    layouts = [layout.strip() for layout in args.layouts.split(",") if layout.strip()]
    if not set(layouts) <= {"archives", "folders"}:
        parser.error("--layouts takes archives and/or folders")
    start = time.perf_counter()
    data = make_archive_set(args.work / "set", args.fraction, archives="archives" in layouts)
    generate_s = time.perf_counter() - start
    print(
        f"generated {data.n_patches} patches, {data.n_rows} rows in {generate_s:.0f} s", flush=True
    )
    results = {}
    for layout in layouts:
        runs = {}
        for n in sorted(int(w) for w in args.workers.split(",")):
            runs[n] = convert_once(data, layout, args.work / f"out-{layout}-{n}", n)
            print(f"{layout}, {n} worker(s): {runs[n]}", flush=True)
        results[layout] = (runs, stream_rate(data.archives) if layout == "archives" else None)
    text = report(data, results, args, generate_s)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
