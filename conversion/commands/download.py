"""``bigearthnet-txt download``: fetch and verify the BigEarthNet v2.0 files
and the text release."""

from __future__ import annotations

import argparse
from pathlib import Path

from bigearthnet_txt.conversion.imagery.checksums import FILE_GROUPS

ALL_GROUPS = ",".join(dict.fromkeys(FILE_GROUPS.values()))


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--mirror``, ``--source-dir`` and ``--sources``: where the files come from."""
    g = parser.add_argument_group("sources (when any is given, the official sources are not used)")
    g.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="URL",
        help="base URL serving the files as URL/<name>; repeatable, tried in order",
    )
    g.add_argument(
        "--source-dir", type=Path, metavar="DIR", help="folder already holding some of the files"
    )
    g.add_argument(
        "--sources",
        type=Path,
        metavar="FILE",
        help='JSON/TOML table {"<name>": {"url": ..., "bytes": ..., "md5": ...}}',
    )


def parse_groups(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()]


def register(sub) -> None:
    parser = sub.add_parser(
        "download",
        help="download and verify the BigEarthNet v2.0 archives, metadata and the text release",
        description="Download (resumable, md5-verified) the files of Zenodo record 10891137 and "
        "BigEarthNet.txt.parquet from the Hugging Face Hub.",
    )
    parser.add_argument("--to", type=Path, required=True, metavar="DIR", help="target folder")
    parser.add_argument(
        "--what",
        default=ALL_GROUPS,
        metavar="GROUPS",
        help="comma-separated groups (default: %(default)s)",
    )
    add_source_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bigearthnet_txt.conversion.download import download

    files = download(
        parse_groups(args.what), args.to, mirrors=args.mirror, source_dir=args.source_dir,
        sources_file=args.sources, progress=not args.quiet,
    )  # fmt: skip
    for name, path in files.items():
        print(f"verified {name} -> {path}")
    return 0
