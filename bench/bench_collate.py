"""Collate benchmark: ``bigearthnet_txt.collate.Collator`` on batches of 256 text rows.

Data: ``--patches`` copies (hard links) of the three real v1.0 S1/S2 pairs, converted once
into ``bench/work/collate-<patches>/`` with ~20 synthetic texts per patch
(``bigearthnet_txt.conversion.synthetic``).
Batches are 256 random ``train`` rows (several rows can share a patch, as in training).

Measured, in one process unless stated:

* read: ``Collator.read_native`` — one batched ``ImageryStore.read`` of the batch's patches;
* collate: ``Collator.collate``, the rest of a call (augmentation, resampling + normalisation to
  ``[256, C, 120, 120]`` float32, tokenisation of prompts and targets, label tensors), as a share of
  read (target <= 15 %), for several settings;
* throughput: samples/s through ``DataLoader(batch_size=256, num_workers=2, shuffle=True)``.

Usage: ``python bench/bench_collate.py [--patches 512] [--batches 8]
[--out bench/results/collate.md]``
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from replicated import convert_replicated

from bigearthnet_txt.augment import Augmenter
from bigearthnet_txt.collate import Collator
from bigearthnet_txt.loading import load_dataset
from bigearthnet_txt.tokenize import TAG_TOKENS, TextTokenizer

BATCH = 256


def build(work: Path, n_patches: int) -> Path:
    """The converted folder (cached: reused when its store is complete)."""
    out = work / "bigearthnet_txt"
    if (out / "data").is_dir() and (out / "patches.parquet").is_file():
        return out
    shutil.rmtree(work, ignore_errors=True)
    out, _, _ = convert_replicated(work, n_patches, rows_per_shard=50_000, workers=2)
    shutil.rmtree(work / "src")
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_settings(
    collators: dict[str, Collator], batches: list[list[dict]], device: torch.device
) -> dict[str, tuple[float, float, float]]:
    """Mean seconds per batch of (read, collate, device side) for each collator. Batch by batch,
    each distinct set of arrays is read once (timed) and every collator collates a copy of it
    (timed), then ``Collator.to_device`` moves the batch to ``device`` and runs what is deferred
    there (timed, synchronised), so that load from other processes hits all settings alike."""
    for collator in collators.values():  # warm-up: opens the store, builds the encoding
        collator.to_device(collator.collate(batches[0], collator.read_native(batches[0])), device)
    reads: dict[str, list[float]] = {name: [] for name in collators}
    collates: dict[str, list[float]] = {name: [] for name in collators}
    devices: dict[str, list[float]] = {name: [] for name in collators}
    for examples in batches:
        read_by_arrays: dict[tuple, tuple[float, dict]] = {}
        for name, collator in collators.items():
            key = collator.layout.arrays
            if key not in read_by_arrays:
                start = time.perf_counter()
                native = collator.read_native(examples)
                read_by_arrays[key] = (time.perf_counter() - start, native)
            seconds, native = read_by_arrays[key]
            copy = {k: v.copy() for k, v in native.items()}
            start = time.perf_counter()
            batch = collator.collate(examples, copy)
            collates[name].append(time.perf_counter() - start)
            reads[name].append(seconds)
            start = time.perf_counter()
            collator.to_device(batch, device)
            _sync(device)
            devices[name].append(time.perf_counter() - start)
    return {
        name: tuple(statistics.mean(x[name]) for x in (reads, collates, devices))
        for name in collators
    }


def loader_rate(dataset, collator: Collator, n_batches: int, device: torch.device) -> float:
    """Samples/s of a training loop's input side: DataLoader batches moved by ``to_device``."""
    loader = DataLoader(
        dataset,
        batch_size=BATCH,
        num_workers=2,
        shuffle=True,
        collate_fn=collator,
        generator=torch.Generator().manual_seed(0),
        persistent_workers=False,
    )
    it = iter(loader)
    next(it)  # worker start-up and the first batch are not counted
    start = time.perf_counter()
    n = 0
    for _, batch in zip(range(n_batches), it, strict=False):
        n += collator.to_device(batch, device)["ID"].shape[0]
    _sync(device)
    return n / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patches", type=int, default=512)
    parser.add_argument("--batches", type=int, default=8, help="batches timed per setting")
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "work")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "collate.md"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    root = build(args.work / f"collate-{args.patches}", args.patches)
    print(f"data: {root} ({time.perf_counter() - started:.1f} s)")
    dataset = load_dataset(root, "all", split="train", imagery=())
    rng = np.random.default_rng(0)
    batches = [
        dataset[rng.choice(len(dataset), BATCH, replace=False).tolist()]
        for _ in range(args.batches)
    ]
    batches = [
        [dict(zip(b, values, strict=True)) for values in zip(*b.values(), strict=True)]
        for b in batches
    ]
    unique = statistics.median(len({e["patch_index"] for e in b}) for b in batches)
    tokenizer = TextTokenizer(special_tokens=TAG_TOKENS)
    settings = {
        "S1S2-10m20m, nearest, tokens": {"bands": "S1S2-10m20m", "tokenizer": tokenizer},
        "S1S2-10m20m, nearest, tokens, augment": {
            "bands": "S1S2-10m20m",
            "tokenizer": tokenizer,
            "augment": Augmenter(seed=0),
        },
        "all, bilinear, tokens, augment": {
            "bands": "all",
            "resample": "bilinear",
            "tokenizer": tokenizer,
            "augment": Augmenter(seed=0),
        },
        "all, device_transform (GPU resamples), tokens, augment": {
            "bands": "all",
            "tokenizer": tokenizer,
            "augment": Augmenter(seed=0),
            "device_transform": True,
        },
    }
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    timings = time_settings(
        {name: Collator(root, **kwargs) for name, kwargs in settings.items()}, batches, device
    )
    for name, (read, collate, on_device) in timings.items():
        rows.append((name, read * 1000, collate * 1000, on_device * 1000))
        print(f"{name:<56} read {read * 1000:7.1f} ms  collate {collate * 1000:6.1f} ms  "
              f"to_device {on_device * 1000:6.1f} ms")  # fmt: skip
    rates = {}
    for name in (
        "S1S2-10m20m, nearest, tokens, augment",
        "all, device_transform (GPU resamples), tokens, augment",
    ):
        rates[name] = loader_rate(dataset, Collator(root, **settings[name]), args.batches, device)
        print(f"DataLoader, 2 workers, {name}: {rates[name]:,.0f} samples/s")
    write_report(args.out, args.patches, len(dataset), unique, rows, rates, device)
    print(f"wrote {args.out} ({time.perf_counter() - started:.1f} s)")
    return 0


def write_report(
    out: Path, patches: int, n_rows: int, unique: float, rows, rates, device: torch.device
) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Collate benchmark (`bench/bench_collate.py`)",
        "",
        (
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores "
            f"(load average {os.getloadavg()[0]:.1f} at the end of the run), "
            f"torch {torch.__version__}, "
            f"1 torch thread per process. Store: {patches:,} replicated real patches; train split "
            f"{n_rows:,} text rows; batches of {BATCH} random train rows "
            f"(median {unique:.0f} distinct patches)."
        ),
        "",
        f"| setting | read (ms / batch) | collate (ms / batch) | `to_device({device.type!r})` "
        "(ms / batch) | collate + to_device, / read |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {name} | {read:.1f} | {collate:.1f} | {dev:.1f} | {(collate + dev) / read:.0%} |"
            for name, read, collate, dev in rows
        ],
        "",
        (
            "Read = `Collator.read_native`, one batched `ImageryStore.read` of the batch's "
            "native arrays;"
        ),
        "collate = `Collator.collate`, everything after the read on the CPU (augmentation,",
        "resampling + normalisation, tokenisation, label tensors); `to_device` = "
        "`Collator.to_device`, the transfer plus, with `device_transform`, the deferred "
        "resampling,",
        f"normalisation and image flips, run on `{device.type}` in this run (synchronised). "
        "Times are",
        "means per batch; every setting collates the same batches, read once.",
        "",
        (
            f"| DataLoader (2 workers, batch 256, shuffled) + `to_device({device.type!r})` "
            "| samples/s |"
        ),
        "|---|---:|",
        *[f"| {name} | {rate:,.0f} |" for name, rate in rates.items()],
        "",
    ]
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
