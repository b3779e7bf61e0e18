"""``bigearthnet-txt info``: what a converted data set folder holds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub) -> None:
    parser = sub.add_parser(
        "info",
        help="rows per task and split, patches, store size, codecs and conversion settings",
        description="Describe a converted data set folder: annotation tables, patch table, imagery store.",
    )
    parser.add_argument("data", type=Path, metavar="DIR", help="converted data set folder")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bigearthnet_txt.info import describe, format_info

    info = describe(args.data)
    print(
        json.dumps(info, indent=1) if args.json else format_info(info),
        end="\n" if args.json else "",
    )
    return 0
