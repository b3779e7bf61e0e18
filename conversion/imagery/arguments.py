"""Command-line flags of the imagery conversion, and ``main`` running it alone
(``python -m bigearthnet_txt.conversion.imagery --out DIR --s2 PATH ...``).

``add_imagery_arguments(parser)`` adds ``--s2/--s1/--reference-maps PATH`` (repeatable; a
``.tar.zst`` or a folder), ``--metadata FILE`` (repeatable), ``--patch-list FILE``,
``--all-patches``, ``--allow-missing-s1``, ``--allow-missing-reference-maps``, ``--skip-bad``,
``--workers N``, ``--codec-preset {speed,balanced,size}``, ``--shard-size N``, ``--verify``,
``--checksums FILE``, ``--engine {local,dask}`` and ``--scheduler ADDRESS``; ``run_imagery(args)``
calls ``convert_imagery`` with the ``ImageryConfig`` of them (``imagery_config``), ``args.out``,
``args.annotations`` (one path or a list) and ``args.quiet``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bigearthnet_txt.conversion.commands.argtypes import positive_int
from bigearthnet_txt.conversion.dask_engine.session import (
    Engine,
    add_engine_arguments,
    engine_session,
)
from bigearthnet_txt.conversion.imagery.codecs import DEFAULT_PRESET, DEFAULT_SHARD_SIZE, PRESETS
from bigearthnet_txt.conversion.imagery.convert import ImageryConfig, ImageryResult, convert_imagery
from bigearthnet_txt.conversion.cli import run_reporting_errors
from bigearthnet_txt.conversion.logs import setup_logging
from bigearthnet_txt.conversion.output_folder import claim_output_folder
from bigearthnet_txt.conversion.remote import localize_arguments, source_argument


def add_imagery_arguments(
    parser: argparse.ArgumentParser, *, with_out_and_annotations: bool = False
) -> None:
    """Add the imagery flags to ``parser`` (``--out``/``--annotations`` too when asked)."""
    if with_out_and_annotations:
        parser.add_argument("--out", required=True, type=Path, help="output folder DIR")
        parser.add_argument(
            "--annotations",
            action="append",
            type=source_argument,
            default=[],
            help="annotation table (release parquet); selects the patches and their split",
        )
    g = parser.add_argument_group("imagery")
    _add_source_flags(g)
    _add_selection_flags(g)
    _add_output_flags(g)
    add_engine_arguments(g)


def _add_source_flags(g) -> None:
    """``--s2``, ``--s1``, ``--reference-maps``, ``--metadata``."""
    g.add_argument(
        "--s2",
        action="append",
        type=source_argument,
        default=[],
        metavar="PATH",
        help="Sentinel-2 source: BigEarthNet-S2.tar.zst or a folder (v2, flat, v1.0); repeatable",
    )
    g.add_argument(
        "--s1",
        action="append",
        type=source_argument,
        default=[],
        metavar="PATH",
        help="Sentinel-1 source: BigEarthNet-S1.tar.zst or a folder; repeatable",
    )
    g.add_argument(
        "--reference-maps",
        action="append",
        type=source_argument,
        default=[],
        metavar="PATH",
        help="Reference_Maps.tar.zst or a folder; repeatable",
    )
    g.add_argument(
        "--metadata",
        action="append",
        type=source_argument,
        default=[],
        metavar="FILE",
        help="metadata.parquet (and the snow/cloud parquet); default: found beside the sources",
    )


def _add_selection_flags(g) -> None:
    """Which patches, and what a missing or bad one does."""
    g.add_argument(
        "--patch-list",
        type=Path,
        metavar="FILE",
        help="convert the patch_ids listed in FILE (one per line)",
    )
    g.add_argument("--all-patches", action="store_true", help="convert every patch of the metadata")
    g.add_argument(
        "--allow-missing-s1",
        action="store_true",
        help="an S2 patch without its S1 pair gets has_s1=false and NaN S1 instead of an error",
    )
    g.add_argument(
        "--allow-missing-reference-maps",
        action="store_true",
        help="a patch without reference map gets has_reference_map=false instead of an error",
    )
    g.add_argument(
        "--skip-bad",
        action="store_true",
        help="record bad patches in DIR/imagery_report.json and go on",
    )


def _add_output_flags(g) -> None:
    """Workers, store layout and verification."""
    g.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="processes decoding GeoTIFFs and threads compressing chunks (default 1)",
    )
    g.add_argument(
        "--codec-preset",
        choices=PRESETS,
        default=DEFAULT_PRESET,
        help="store codecs (default: %(default)s)",
    )
    g.add_argument(
        "--shard-size",
        type=positive_int,
        default=DEFAULT_SHARD_SIZE,
        metavar="PATCHES",
        help="patches per shard file (default %(default)s)",
    )
    g.add_argument(
        "--verify", action="store_true", help="check archive/metadata md5 sums before converting"
    )
    g.add_argument(
        "--checksums",
        type=Path,
        metavar="FILE",
        help="md5sum-format list for --verify (default: published sums)",
    )


def imagery_config(args: argparse.Namespace) -> ImageryConfig:
    """The ``ImageryConfig`` of parsed imagery flags (``args.annotations``: one path or a list)."""
    patch_ids = None
    if args.patch_list:
        lines = Path(args.patch_list).read_text().splitlines()
        patch_ids = [line.strip() for line in lines if line.strip()]
    annotations = args.annotations or []
    return ImageryConfig(
        s2=args.s2, s1=args.s1, reference_maps=args.reference_maps, metadata=args.metadata,
        annotations=annotations if isinstance(annotations, list) else [annotations],
        patch_ids=patch_ids, all_patches=args.all_patches, allow_missing_s1=args.allow_missing_s1,
        allow_missing_reference_maps=args.allow_missing_reference_maps, skip_bad=args.skip_bad,
        workers=args.workers, preset=args.codec_preset, shard_size=args.shard_size,
        verify=args.verify, checksum_list=args.checksums,
    )  # fmt: skip


def run_imagery(args: argparse.Namespace, engine: Engine | None = None) -> ImageryResult:
    """Run ``convert_imagery`` from parsed arguments (``args.out``, ``args.annotations`` + imagery
    flags) on ``engine`` (default: the one of ``--engine``, opened for this call)."""
    if engine is None:
        with engine_session(args) as opened:
            return run_imagery(args, opened)
    localize_arguments(args)
    return convert_imagery(
        args.out,
        imagery_config(args),
        executor=engine.executor,
        progress=not getattr(args, "quiet", False),
    )


def main(argv: list[str] | None = None) -> int:
    """The imagery conversion alone: ``python -m bigearthnet_txt.conversion.imagery ARGS``."""
    parser = argparse.ArgumentParser(
        prog="python -m bigearthnet_txt.conversion.imagery",
        description="Convert BigEarthNet imagery into DIR/imagery.zarr and DIR/patches.parquet.",
    )
    add_imagery_arguments(parser, with_out_and_annotations=True)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    setup_logging(logging.WARNING if args.quiet else logging.INFO)

    def run() -> None:
        with claim_output_folder(args.out, "imagery"):
            run_imagery(args)

    return run_reporting_errors("imagery conversion", run)
