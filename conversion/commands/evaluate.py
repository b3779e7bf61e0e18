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
        required=True,
        metavar="FILE",
        help='JSON Lines of {"ID": …, "prediction": …} or Parquet with columns ID, prediction',
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
        default=None,
        metavar="DIR_OR_NAME",
        help="converted data set folder, or a name in the data home as load_dataset takes it "
        "(default: the current folder if converted, else the data home's bigearthnet_txt)",
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
    from bigearthnet_txt.evaluate import evaluate, write_report
    from bigearthnet_txt.paths import local_folder

    report = evaluate(
        args.predictions,
        local_folder(args.data),
        splits=args.split or ["bench"],
        strict=args.strict,
    )
    write_report(report, args.out_json, args.out_md)
    print(report.to_markdown(), end="")
    return 0
