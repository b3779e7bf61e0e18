"""``bigearthnet-txt push DIR --repo-id NAMESPACE/NAME``: publish a converted folder on the Hub."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bigearthnet_txt.conversion.commands.argtypes import positive_int


def register(sub) -> None:
    parser = sub.add_parser(
        "push",
        help="upload a converted folder to a Hugging Face Hub data set repository (resumable)",
        description="Write the data set card, check the Hub's limits, create the repository if "
        "needed and upload every file it does not hold yet, in batches; delete the files it "
        "holds that DIR no longer has. Rerun after an interruption to resume.",
    )
    parser.add_argument(
        "dir", type=Path, metavar="DIR", help="converted folder (bigearthnet-txt convert --out)"
    )
    parser.add_argument(
        "--repo-id", required=True, metavar="NAMESPACE/NAME", help="data set repository"
    )
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument(
        "--token",
        default=None,
        help="Hub token; better leave it out: the HF_TOKEN environment variable or the saved login "
        "(`hf auth login`) is used then, while a token given here is visible to other users in the "
        "process list and stays in the shell history",
    )
    parser.add_argument(
        "--endpoint",
        default=None,
        metavar="URL",
        help="Hub endpoint (default: HF_ENDPOINT or the Hub)",
    )
    parser.add_argument(
        "--batch-files",
        type=positive_int,
        default=1000,
        metavar="N",
        help="files per upload_folder call (default: %(default)s)",
    )
    parser.add_argument(
        "--keep-card",
        action="store_true",
        help="upload DIR/README.md as it is instead of rewriting it",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bigearthnet_txt.conversion.hub import PushInterrupted, push

    if args.repo_id.count("/") != 1:
        raise ValueError(f"--repo-id must be NAMESPACE/NAME, got {args.repo_id!r}")
    from bigearthnet_txt.conversion.cli import one_line
    from bigearthnet_txt.conversion.output_folder import claim_output_folder

    if args.token is not None:
        print(
            "bigearthnet-txt push: warning: --token shows the token to other users of this "
            "machine (process list, shell history); prefer HF_TOKEN or `hf auth login`",
            file=sys.stderr,
        )
    from bigearthnet_txt.configs import is_converted

    if not is_converted(args.dir):
        raise FileNotFoundError(
            f"{args.dir}: not a converted folder (no data/<task>/); give the --out of "
            "bigearthnet-txt convert"
        )
    try:
        with claim_output_folder(args.dir, "push", check_foreign=False):
            result = push(args.dir, args.repo_id, private=args.private, token=args.token,
                          endpoint=args.endpoint, batch_files=args.batch_files,
                          write_card=not args.keep_card)  # fmt: skip
    except PushInterrupted as err:
        print(f"bigearthnet-txt push: {one_line(err)}", file=sys.stderr)
        return 1
    print(
        f"{result.repo_url}: uploaded {len(result.uploaded):,} files in {result.batches} "
        f"batch(es), {len(result.skipped):,} unchanged, {len(result.deleted):,} stale files deleted"
    )
    return 0
