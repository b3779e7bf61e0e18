"""``bigearthnet-txt evaluate``: score one or more prediction files per task on given splits."""

from __future__ import annotations

import argparse
from pathlib import Path

from bigearthnet_txt.conversion.commands.argtypes import add_data_argument


def register(sub) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="score predictions (JSONL or Parquet keyed by ID) per task and category",
        description="Score predictions against the converted tables: captioning BLEU-4 and chrF "
        "(sacrebleu) plus COCO BLEU-4 and CIDEr, binary and MCQ accuracy per category, "
        "referring mean IoU and Acc@0.5 per category; breakdowns by country, season, climate "
        "zone and land-cover class. Answers are read from free-form text (--strict: exact "
        "formats). Unparseable and missing predictions count as wrong and are reported. "
        "Several --predictions give one side-by-side table (models as columns).",
    )
    parser.add_argument(
        "--predictions",
        type=Path,
        action="append",
        metavar="FILE",
        help='JSON Lines of {"ID": …, "prediction": …} or Parquet with columns ID, prediction '
        "(repeatable: one model per file)",
    )
    parser.add_argument(
        "--name",
        action="append",
        default=None,
        metavar="NAME",
        help="model name per --predictions, in order (default: the file names without suffix)",
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
        "--task",
        action="append",
        default=None,
        metavar="TASK",
        help="task to score (repeatable; binary, mcq, captioning, 'bounding box', or captions, "
        "referring; default: all)",
    )
    add_data_argument(parser, "--data")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="accept only the release's exact answer formats (yes/no, one letter a-d, "
        "[x1 y1, x2 y2]) instead of extracting answers from free-form text",
    )
    parser.add_argument(
        "--box-scale",
        choices=("unit", "1000", "pixels"),
        default="unit",
        help="grid of predicted boxes: unit (0-1, as released), 1000 (0-1000), pixels (0-120)",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="95%% confidence intervals from N resamples of the patches (default: none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    parser.add_argument("--out-json", type=Path, metavar="FILE", help="write the report as JSON")
    parser.add_argument("--out-md", type=Path, metavar="FILE", help="write the report as Markdown")
    parser.add_argument(
        "--out-png", type=Path, metavar="FILE", help="plot per-task and per-category scores (PNG)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.embeddings is not None:
        return run_retrieval(args)
    if args.predictions is None:
        raise SystemExit("evaluate: give --predictions FILE (or --embeddings FILE)")
    from bigearthnet_txt.evaluate import evaluate, write_report
    from bigearthnet_txt.evaluation_compare import side_by_side, write_comparison
    from bigearthnet_txt.paths import local_folder

    names = args.name or [p.stem for p in args.predictions]
    if len(names) != len(args.predictions):
        raise ValueError(f"{len(names)} --name for {len(args.predictions)} --predictions")
    if len(set(names)) != len(names):
        raise ValueError(f"model names must differ, got {names}: use --name")
    data = local_folder(args.data)
    reports = {
        name: evaluate(
            path,
            data,
            splits=args.split or ["bench"],
            strict=args.strict,
            tasks=args.task,
            box_scale=args.box_scale,
            bootstrap=args.bootstrap,
            seed=args.seed,
        )
        for name, path in zip(names, args.predictions, strict=True)
    }
    if len(reports) == 1:
        report = next(iter(reports.values()))
        write_report(report, args.out_json, args.out_md)
        write_comparison(reports, out_png=args.out_png)
        print(report.to_markdown(), end="")
    else:
        write_comparison(reports, args.out_json, args.out_md, args.out_png)
        print(side_by_side(reports), end="")
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
