"""WFA end to end on the converted sample: patch-grouped batches → tiny dual encoder → pooled text
features → contrastive loss; once with uniqueness weights, once with attention pooling; then
text-image retrieval metrics. It shows that the pieces fit together; it claims no accuracy.

    python bench/wfa_example.py [--data DIR] [--steps 30] [--out bench/results/wfa_example.md]

Without ``--data`` the embedded real sample is converted first (as ``bigearthnet-txt demo`` does)
into ``bench/work/wfa_sample``. Training uses the train and validation rows (the sample has few
patches), evaluation every row of every split against every patch with imagery.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader

from bigearthnet_txt import BigEarthNetTxt, Collator, PatchBatchSampler, WeightedFeatureAggregation
from bigearthnet_txt.retrieval import metrics_markdown, retrieval_metrics
from bigearthnet_txt.schema import SPLITS
from bigearthnet_txt.tokenize import TAG_TOKENS, TextTokenizer

DIM = 64
BUCKETS = 8192  # token ids hashed into this many embeddings (keeps the text encoder tiny)


class TinyDualEncoder(nn.Module):
    """Image: 3 strided convolutions + mean pool → ``DIM``. Text: mean of hashed token
    embeddings of prompt and target → ``DIM``."""

    def __init__(self, channels: int):
        super().__init__()
        self.image = nn.Sequential(
            nn.Conv2d(channels, 32, 5, stride=4), nn.GELU(), nn.Conv2d(32, 64, 3, stride=2),
            nn.GELU(), nn.Conv2d(64, DIM, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.tokens = nn.Embedding(BUCKETS, DIM)
        self.text_proj = nn.Linear(DIM, DIM)
        self.scale = nn.Parameter(torch.tensor(2.0))

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image(image), dim=-1)

    def encode_text(self, batch: dict) -> torch.Tensor:
        ids = torch.cat([batch["prompt_input_ids"], batch["target_input_ids"]], dim=1) % BUCKETS
        mask = torch.cat([batch["prompt_attention_mask"], batch["target_attention_mask"]], dim=1)
        mask = mask.to(torch.float32)[..., None]
        mean = (self.tokens(ids) * mask).sum(1) / mask.sum(1).clamp_min(1)
        return self.text_proj(mean)


def first_of_each_group(group_index: torch.Tensor) -> torch.Tensor:
    """Row of the first example of every group ``0 .. G-1`` (its patch image)."""
    g = int(group_index.max()) + 1
    rows = torch.full((g,), len(group_index), dtype=torch.int64)
    return rows.scatter_reduce(0, group_index, torch.arange(len(group_index)), reduce="amin")


def train(mode: str, rows, collator: Collator, steps: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = TinyDualEncoder(len(collator.layout.bands))
    pool = WeightedFeatureAggregation(mode, dim=DIM)
    params = list(model.parameters()) + list(pool.parameters())
    optimiser = torch.optim.AdamW(params, lr=3e-3)
    sampler = PatchBatchSampler.from_patch_ids(
        [r["patch_id"] for r in rows], batch_size=48, texts_per_patch=8, seed=seed
    )
    step, epoch = 0, 0
    while step < steps:
        sampler.set_epoch(epoch)
        collator.set_epoch(epoch)
        loader = DataLoader(rows, batch_sampler=sampler, collate_fn=collator)
        for batch in loader:
            groups = batch["group_index"]
            images = model.encode_image(batch["image"][first_of_each_group(groups)])
            texts = pool(model.encode_text(batch), groups, weights=batch["redundancy_weight"])
            logits = model.scale.exp() * F.normalize(texts, dim=-1) @ images.T
            target = torch.arange(len(images))
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
            print(f"{mode:10s} step {step:3d}  patches {len(images):2d}  loss {loss.item():.3f}")
            if step == steps:
                break
        epoch += 1
    return model


@torch.no_grad()
def embed(model: nn.Module, rows, collator: Collator) -> dict[str, np.ndarray]:
    """Text embeddings of every row, image embeddings of every patch (``patch_index`` order)."""
    model.eval()
    texts, text_patch, images, image_patch = [], [], {}, []
    loader = DataLoader(rows, batch_size=64, collate_fn=collator)
    for batch in loader:
        texts.append(F.normalize(model.encode_text(batch), dim=-1))
        text_patch.append(batch["patch_index"])
        first = first_of_each_group(batch["group_index"])
        for row, feature in zip(
            first.tolist(), model.encode_image(batch["image"][first]), strict=True
        ):
            images.setdefault(int(batch["patch_index"][row]), feature)
    image_patch = sorted(images)
    return {
        "text": torch.cat(texts).numpy(),
        "image": torch.stack([images[p] for p in image_patch]).numpy(),
        "text_patch_index": torch.cat(text_patch).numpy(),
        "image_patch_index": np.asarray(image_patch),
    }


def converted_sample(work: Path) -> Path:
    from bigearthnet_txt.conversion.commands import demo

    data = work / "wfa_sample"
    if not (data / "patches.parquet").exists() and demo.convert_sample(data):
        raise SystemExit("converting the embedded sample failed")
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="converted folder (default: the sample)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "work")
    parser.add_argument("--out", type=Path, help="write the metrics as Markdown")
    args = parser.parse_args()
    data = args.data or converted_sample(args.work)
    cache = args.work / "arrow"
    parts = [BigEarthNetTxt(data, "all", s, imagery=(), cache_dir=cache) for s in SPLITS]
    train_rows = [parts[0][i] for i in range(len(parts[0]))]
    train_rows += [parts[1][i] for i in range(len(parts[1]))]
    eval_rows = ConcatDataset(parts)
    tokenizer = TextTokenizer(special_tokens=TAG_TOKENS)
    collator = Collator(data, bands="S2-10m20m", stats="official", tokenizer=tokenizer)
    results = {}
    for mode in ("uniqueness", "attention"):
        model = train(mode, train_rows, collator, args.steps, args.seed)
        e = embed(model, eval_rows, collator)
        results[mode] = retrieval_metrics(
            e["text"], e["image"], e["text_patch_index"], e["image_patch_index"]
        )
    report = [
        "# WFA example: tiny dual encoder on the converted sample\n",
        f"Command: `python bench/wfa_example.py --steps {args.steps} --seed {args.seed}"
        + (f" --data {args.data}" if args.data else "") + "`  ",
        "Commit: " + subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip()
        + f"; date: {datetime.date.today().isoformat()}\n",
        f"Training rows: {len(train_rows)} (train + validation); evaluation: every text of every "
        "split against every patch. A smoke test of the pieces, not an accuracy claim.\n",
    ]  # fmt: skip
    for mode, metrics in results.items():
        report += [f"## {mode} pooling\n", metrics_markdown(metrics)]
    text = "\n".join(report)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
