"""``bigearthnet-txt convert``: the release parquet (and imagery) → a Hub-ready data set folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from bigearthnet_txt.conversion.commands.argtypes import positive_int, positive_float
from bigearthnet_txt.conversion.dask_engine.session import engine_session
from bigearthnet_txt.conversion.imagery.arguments import add_imagery_arguments, run_imagery
from bigearthnet_txt.conversion.remote import localize_arguments, source_argument


def add_annotation_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("annotations")
    g.add_argument(
        "--annotations",
        type=source_argument,
        required=True,
        metavar="FILE",
        help="BigEarthNet.txt.parquet (or a file in its schema)",
    )
    g.add_argument(
        "--rows-per-shard",
        type=positive_int,
        default=250_000,
        help="target rows per output Parquet file (default: %(default)s)",
    )
    g.add_argument(
        "--group-key",
        choices=("patch", "patch_type"),
        default="patch",
        help="texts weighed against each other for redundancy weights (default: %(default)s)",
    )
    g.add_argument(
        "--text-fields",
        default="input,output",
        help="comma-separated columns joined into the text that is scored (default: %(default)s)",
    )
    g.add_argument(
        "--temperature",
        type=positive_float,
        default=None,
        help="softmax temperature for redundancy weights (default: u / sum(u))",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace tables converted earlier from other input or settings, and output "
        "(data/, imagery.zarr/, README.md, ...) in DIR that bigearthnet-txt did not write",
    )


def annotation_settings(args: argparse.Namespace):
    from bigearthnet_txt.conversion.annotations import AnnotationSettings

    return AnnotationSettings(
        rows_per_shard=args.rows_per_shard,
        group_key=args.group_key,
        text_fields=tuple(f.strip() for f in args.text_fields.split(",") if f.strip()),
        temperature=args.temperature,
    )


def register(sub) -> None:
    parser = sub.add_parser(
        "convert",
        help="convert the annotation parquet (and imagery) into per-task tables",
        description="Convert BigEarthNet.txt into DIR/data/<task>/<split>-NNNNN.parquet.",
    )
    add_annotation_arguments(parser)
    add_imagery_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def print_summary(summary) -> None:
    from bigearthnet_txt.schema import SPLITS

    width = max(len(s) for s in SPLITS)
    print(f"{'task':<10} " + " ".join(f"{s:>{max(width, 9)}}" for s in SPLITS))
    for task, per_split in summary.rows.items():
        print(f"{task:<10} " + " ".join(f"{per_split[s]:>{max(width, 9)},}" for s in SPLITS))
    print(f"{'patches':<10} " + " ".join(f"{summary.patches[s]:>{max(width, 9)},}" for s in SPLITS))


def check_annotation_input(args: argparse.Namespace) -> None:
    """Check the annotation file (and its patches against the metadata and the S2 source folders,
    when imagery is converted) before any imagery work: bad annotations fail in seconds, not after
    the imagery passes."""
    from bigearthnet_txt.conversion.annotation_check import check_annotations

    metadata = None
    if args.s2 or args.s1 or args.reference_maps:
        from bigearthnet_txt.conversion.imagery.convert import find_metadata
        from bigearthnet_txt.conversion.imagery.metadata import load_metadata

        files = [Path(m) for m in args.metadata] or find_metadata(
            Path(p) for p in (*args.s2, *args.s1, *args.reference_maps) if Path(p).exists()
        )
        metadata = load_metadata(files) if files else None
    check_annotations(args.annotations, metadata, local_s2_folders(args))


def local_s2_folders(args: argparse.Namespace) -> list[Path]:
    """The ``--s2`` sources when every one is a local folder and missing imagery is an error (no
    ``--skip-bad``): their patch folders are listed before the imagery passes. Archives and URLs
    cannot be listed without streaming them (the S2 pass reports their missing patches)."""
    if args.skip_bad or not args.s2:
        return []
    if all(isinstance(s, Path) and s.is_dir() for s in args.s2):
        return list(args.s2)
    return []


def run(args: argparse.Namespace) -> int:
    from bigearthnet_txt.conversion.output_folder import claim_output_folder

    with claim_output_folder(args.out, "convert", overwrite=args.overwrite):
        return convert(args)


def convert(args: argparse.Namespace) -> int:
    """The conversion of ``run``, in an output folder that this run holds."""
    from bigearthnet_txt.conversion.annotations import convert_annotations

    localize_arguments(args)
    check_annotation_input(args)
    patch_index = None
    with engine_session(args) as engine:
        if args.s2 or args.s1 or args.reference_maps:
            from bigearthnet_txt.conversion.imagery.convert import patch_index_map

            run_imagery(args, engine)
            patch_index = patch_index_map(args.out)
        summary = convert_annotations(
            args.annotations,
            args.out,
            annotation_settings(args),
            patch_index=patch_index,
            progress=not args.quiet,
            overwrite=args.overwrite,
            drop_missing=args.skip_bad,
            workers=getattr(args, "workers", 1) or 1,
            **engine.annotation_options(),
        )
    files, seconds = len(summary.files), summary.seconds
    print(f"annotation tables in {args.out}/data ({files} files, {seconds:.1f} s)")
    if summary.dropped.get("rows"):
        print(
            f"left out {summary.dropped['rows']:,} rows of {len(summary.dropped['patches'])} "
            f"patch(es) without imagery (see {args.out}/annotations.json)"
        )
    print_summary(summary)
    from bigearthnet_txt.conversion.card import write_card

    print(f"data set card: {write_card(args.out)}")
    return 0
