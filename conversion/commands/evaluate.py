"""``bigearthnet-txt evaluate``: score a prediction file per task on one or more splits."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="score predictions (JSONL or Parquet keyed by ID) per task and category",
        description="Score predictions against the converted tables: captioning BLEU-4 and chrF, "
        "binary and MCQ accuracy per category, referring mean IoU and Acc@0.5 per category. "
        "Unparseable and missing predictions count as wrong and are reported.",
    )
    parser.add_argument(
        "--predictions",
        type=Path,
        metavar="FILE",
        help='JSON Lines of {"ID": …, "prediction": …} or Parquet with columns ID, prediction',
    )
    parser.add_argument(
        "--embeddings",
        type=Path,
        metavar="FILE",
        help="instead of --predictions: retrieval Recall@1/5/10 and mR from an .npz of text "
        "[T, D], image [P, D], text_patch_index [T] (optional image_patch_index [P])",
    )
    parser.add_argument(
        "--device", default=None, help="with --embeddings: torch device (default cpu)"
    )
    parser.add_argument(
        "--split",
        action="append",
        default=None,
        metavar="SPLIT",
        help="split to score (repeatable; default: bench). The official loader's "
        "test set is --split test --split bench",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="converted data set folder (default: current folder)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="parse answers exactly as written (no trimming, lower-casing or trailing period)",
    )
    parser.add_argument("--out-json", type=Path, metavar="FILE", help="write the report as JSON")
    parser.add_argument("--out-md", type=Path, metavar="FILE", help="write the report as Markdown")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.embeddings is not None:
        return run_retrieval(args)
    if args.predictions is None:
        raise SystemExit("evaluate: give --predictions FILE (or --embeddings FILE)")
    from bigearthnet_txt.evaluate import evaluate, write_report

    report = evaluate(
        args.predictions, args.data, splits=args.split or ["bench"], strict=args.strict
    )
    write_report(report, args.out_json, args.out_md)
    print(report.to_markdown(), end="")
    return 0


def run_retrieval(args: argparse.Namespace) -> int:
    """Retrieval metrics of an embeddings file (``bigearthnet_txt.retrieval``)."""
    import json

    from bigearthnet_txt.retrieval import metrics_from_file, metrics_markdown

    metrics = metrics_from_file(args.embeddings, device=args.device)
    if args.out_json:
        args.out_json.write_text(json.dumps(metrics, indent=2) + "\n")
    if args.out_md:
        args.out_md.write_text(metrics_markdown(metrics))
    print(metrics_markdown(metrics), end="")
    return 0
