"""Patch-grouped batches: what PatchBatchSampler adds to a DataLoader epoch over BigEarthNetTxt.

    python bench/bench_sampler.py [--patches 512] [--rounds 2] [--out bench/results/sampler.md]

Data: ``--patches`` real patches replicated and converted with ~20 release-like texts each (the
collate benchmark's folder). Both loaders run a full train epoch of ``BigEarthNetTxt`` rows with
the same ``Collator`` (S1S2-10m20m, nearest, tokens), 2 workers, batch size 256:

* anchor: ``DataLoader(ds, batch_size=256, shuffle=True)`` (torch's ``RandomSampler``);
* grouped: ``DataLoader(ds, batch_sampler=PatchBatchSampler(ds, 256, seed=0))``.

Rounds alternate between the two; the medians are reported. The sampler's own cost (planning the
epoch and yielding its index lists, no data read) is timed separately, against torch's
``BatchSampler(RandomSampler)`` doing the same job, and also on 2.4 M made-up rows (~ 20 per
patch) to show that planning stays cheap at the full test split's size.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from bigearthnet_txt import BigEarthNetTxt, Collator, PatchBatchSampler
from bigearthnet_txt.tokenize import TAG_TOKENS, TextTokenizer

BATCH = 256
HERE = Path(__file__).resolve().parent


def build(work: Path, patches: int) -> Path:
    spec = importlib.util.spec_from_file_location("bench_collate", HERE / "bench_collate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build(work, patches)


def epoch_seconds(loader: DataLoader) -> tuple[float, int]:
    start = time.perf_counter()
    rows = sum(batch["ID"].shape[0] for batch in loader)
    return time.perf_counter() - start, rows


def sampler_seconds(make, epochs: int = 3) -> float:
    """Median seconds to plan and yield one epoch of index lists."""
    times = []
    for epoch in range(epochs):
        sampler = make()
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        start = time.perf_counter()
        for _ in sampler:
            pass
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patches", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, default=HERE / "work")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = build(args.work / f"collate-{args.patches}", args.patches)
    ds = BigEarthNetTxt(root, "all", "train", imagery=(), cache_dir=args.work / "arrow")
    collator = Collator(
        root, bands="S1S2-10m20m", tokenizer=TextTokenizer(special_tokens=TAG_TOKENS)
    )

    def anchor_loader():
        return DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=2, collate_fn=collator,
                          generator=torch.Generator().manual_seed(0))  # fmt: skip

    def grouped_loader():
        sampler = PatchBatchSampler(ds, BATCH, seed=0)
        return DataLoader(ds, batch_sampler=sampler, num_workers=2, collate_fn=collator)

    times: dict[str, list[float]] = {"anchor": [], "grouped": []}
    for r in range(args.rounds):
        for name, make in (("anchor", anchor_loader), ("grouped", grouped_loader)):
            seconds, rows = epoch_seconds(make())
            assert rows == len(ds)
            times[name].append(seconds)
            print(f"round {r} {name}: {seconds:.2f} s for {rows} rows", flush=True)
    anchor, grouped = (statistics.median(times[k]) for k in ("anchor", "grouped"))
    own = sampler_seconds(lambda: PatchBatchSampler(ds, BATCH, seed=0))
    torch_own = sampler_seconds(
        lambda: BatchSampler(
            RandomSampler(ds, generator=torch.Generator().manual_seed(0)), BATCH, drop_last=False
        )  # fmt: skip
    )
    rng = np.random.default_rng(0)
    big = np.repeat(np.arange(120_000), 20)[:2_400_000]
    big_ids = [f"p{k:06d}" for k in rng.permutation(big)]
    start = time.perf_counter()
    big_sampler = PatchBatchSampler.from_patch_ids(big_ids, BATCH, seed=0)
    setup_big = time.perf_counter() - start
    plan_big = sampler_seconds(lambda: big_sampler, epochs=2)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()  # fmt: skip
    lines = [
        "# Patch-grouped batch sampler: cost in a DataLoader epoch\n",
        "Command: `python bench/bench_sampler.py "
        f"--patches {args.patches} --rounds {args.rounds}`  ",
        f"Commit: {commit}; date: {datetime.date.today().isoformat()}; a shared 2-core machine\n",
        f"Data: {args.patches} replicated real patches, train split of config `all`: "
        f"{len(ds)} rows, "
        f"batch size {BATCH}, 2 workers, Collator S1S2-10m20m nearest with tokens. Median of "
        f"{args.rounds} alternating rounds.\n",
        "| loader | epoch seconds | ratio to anchor |",
        "|---|---:|---:|",
        f"| anchor: `shuffle=True` (RandomSampler) | {anchor:.2f} | 1.00 |",
        f"| `PatchBatchSampler(ds, {BATCH})` | {grouped:.2f} | {grouped / anchor:.2f} |",
        "",
        "The sampler's own work per epoch (planning + yielding index lists, no data read):\n",
        "| sampler | seconds per epoch | share of the anchor epoch |",
        "|---|---:|---:|",
        f"| torch `BatchSampler(RandomSampler)` | {torch_own:.4f} | "
        f"{100 * torch_own / anchor:.2f} % |",
        f"| `PatchBatchSampler` | {own:.4f} | {100 * own / anchor:.2f} % |",
        "",
        "At the test split's size (2.4 M made-up rows, 120 k patches): construction "
        f"{setup_big:.2f} s "
        f"once, planning + yielding {plan_big:.2f} s per epoch.\n",
    ]  # fmt: skip
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
