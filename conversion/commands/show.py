"""``bigearthnet-txt show``: a PNG of one patch with its boxes, points and texts."""

from __future__ import annotations

import argparse
from pathlib import Path

from bigearthnet_txt.conversion.commands.argtypes import add_data_argument, positive_int


def register(sub) -> None:
    parser = sub.add_parser(
        "show",
        help="draw a patch (true colour, false colour, S1) with its boxes and texts into a PNG",
        description="Draw the patch of a row ID or a patch name (patch_id or s1_name): true "
        "colour, false colour and Sentinel-1 panels with the boxes and points of its referring "
        "rows, and every text of the patch beside them.",
    )
    parser.add_argument(
        "query", metavar="ID_OR_PATCH", help="row ID (digits) or patch_id / s1_name"
    )
    add_data_argument(parser, "--data")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE.png", help="PNG to write")
    parser.add_argument(
        "--panel",
        type=positive_int,
        default=360,
        metavar="PIXELS",
        help="size of each image panel (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bigearthnet_txt.paths import local_folder
    from bigearthnet_txt.show import show

    out = show(args.query, local_folder(args.data), args.out, panel=args.panel)
    print(f"wrote {out}")
    return 0
