"""``bigearthnet-txt info``: what a converted data set folder holds."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bigearthnet_txt.conversion.commands.argtypes import add_data_argument


def register(sub) -> None:
    parser = sub.add_parser(
        "info",
        help="rows per task and split, patches, store size, codecs and conversion settings",
        description="Describe a converted data set folder: annotation tables, patch table, "
        "imagery store.",
    )
    add_data_argument(parser, "data", nargs="?")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bigearthnet_txt.errors import DataNotFoundError, StoreError
    from bigearthnet_txt.info import describe, format_info
    from bigearthnet_txt.paths import local_folder

    try:
        folder = local_folder(args.data)
    except DataNotFoundError:
        if args.data is None or not Path(args.data).is_dir():
            raise
        folder = Path(args.data)  # e.g. imagery only: describe says what it holds
    info = describe(folder)
    print(
        json.dumps(info, indent=1) if args.json else format_info(info),
        end="\n" if args.json else "",
    )
    if info["problems"]:
        raise StoreError(
            f"{folder}: {len(info['problems'])} problem(s): {'; '.join(info['problems'])}; "
            "convert again into a new folder"
        )
    return 0
