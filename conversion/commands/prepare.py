"""``bigearthnet-txt prepare``: download (or stream) and convert the full data set in one command.

Without ``--stream`` the archives are downloaded and verified into ``--download-to`` (default
``OUT/downloads``) and converted from there. With ``--stream`` only the metadata and the text
release are fetched (into ``OUT/.sources``); each archive is read from its first source as a stream
and its md5 is checked on the fly. Either way the conversion is ``bigearthnet-txt convert`` and a
rerun resumes: verified downloads are kept, finished shards are not written again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bigearthnet_txt.conversion.commands.argtypes import positive_int
from bigearthnet_txt.conversion.commands.download import add_source_arguments
from bigearthnet_txt.conversion.imagery.checksums import FILE_GROUPS
from bigearthnet_txt.conversion.imagery.codecs import DEFAULT_PRESET, DEFAULT_SHARD_SIZE, PRESETS
from bigearthnet_txt.schema import RELEASE_FILENAME

SMALL_GROUPS = ("metadata", "text")
ARCHIVE_GROUPS = tuple(dict.fromkeys(g for g in FILE_GROUPS.values() if g not in SMALL_GROUPS))
FORWARDED_FLAGS = ("--allow-missing-s1", "--allow-missing-reference-maps", "--skip-bad")


def register(sub) -> None:
    parser = sub.add_parser(
        "prepare",
        help="download (or stream) and convert BigEarthNet.txt with its imagery in one command",
        description="From nothing to a converted data set: fetch, verify, convert.",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="converted data set folder"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--stream", action="store_true", help="read the archives from their source, no local copy"
    )
    mode.add_argument(
        "--download-to", type=Path, metavar="DIR", help="archive folder (default: OUT/downloads)"
    )
    add_source_arguments(parser)
    g = parser.add_argument_group("conversion (passed to convert)")
    g.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="decoding processes (default 1)",
    )
    g.add_argument(
        "--shard-size",
        type=positive_int,
        default=DEFAULT_SHARD_SIZE,
        metavar="PATCHES",
        help=f"patches per shard (default {DEFAULT_SHARD_SIZE})",
    )
    g.add_argument("--codec-preset", choices=PRESETS, default=DEFAULT_PRESET, help="store codecs")
    for flag in FORWARDED_FLAGS:
        g.add_argument(flag, action="store_true", help=f"see convert {flag}")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def convert_argv(
    args: argparse.Namespace, files: dict[str, str], checksums: Path | None
) -> list[str]:
    """The ``bigearthnet-txt convert`` arguments for the fetched/streamed ``files``
    (name -> path/URL): the text release as ``--annotations``, every other file as
    ``--<its group>``."""
    argv = ["convert", "--out", str(args.out), "--annotations", files[RELEASE_FILENAME]]
    for name, group in FILE_GROUPS.items():
        if name != RELEASE_FILENAME:
            argv += [f"--{group}", files[name]]
    argv += [
        "--workers",
        str(args.workers),
        "--shard-size",
        str(args.shard_size),
        "--codec-preset",
        args.codec_preset,
    ]
    argv += [flag for flag in FORWARDED_FLAGS if getattr(args, flag[2:].replace("-", "_"))]
    if checksums is not None:
        argv += ["--verify", "--checksums", str(checksums)]
    return argv + (["--quiet"] if args.quiet else [])


def stream_location(url: str) -> str:
    """A streamable location: ``file://`` URLs become paths, other URLs stay as they are."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(url)
    return unquote(parsed.path) if parsed.scheme == "file" else url


def run(args: argparse.Namespace) -> int:
    from bigearthnet_txt.conversion.output_folder import claim_output_folder

    with claim_output_folder(args.out, "prepare"):
        return prepare(args)


def prepare(args: argparse.Namespace) -> int:
    """Fetch and convert (``run``), in an output folder that this run holds."""
    from bigearthnet_txt.conversion.cli import build_parser
    from bigearthnet_txt.conversion.download import download, names_for, resolve_sources
    from bigearthnet_txt.conversion.remote import LOCAL_COPIES

    sources = {"mirrors": args.mirror, "source_dir": args.source_dir, "sources_file": args.sources}
    progress = not args.quiet
    checksums = None
    if args.stream:
        local = download(SMALL_GROUPS, args.out / LOCAL_COPIES, **sources, progress=progress)
        files = {name: str(path) for name, path in local.items()}
        archives = resolve_sources(names_for(ARCHIVE_GROUPS), **sources)
        files.update({a.name: stream_location(a.urls[0]) for a in archives})
        checksums = args.out / LOCAL_COPIES / "checksums.md5"
        known = [*archives, *resolve_sources(names_for(["metadata"]), **sources)]
        checksums.write_text("".join(f"{s.md5}  {s.name}\n" for s in known if s.md5))
    else:
        folder = args.download_to or args.out / "downloads"
        fetched = download((*ARCHIVE_GROUPS, *SMALL_GROUPS), folder, **sources, progress=progress)
        files = {name: str(path) for name, path in fetched.items()}
    convert = build_parser().parse_args(convert_argv(args, files, checksums))
    return int(convert.func(convert) or 0)
