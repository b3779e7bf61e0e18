"""The ``bigearthnet-txt`` command line.

Each sub-command lives in its own module exposing ``register(subparsers)``, which adds the
sub-command's parser and sets ``func`` to a callable taking the parsed ``argparse.Namespace``
and returning an exit code. Modules import their heavy dependencies inside ``func``. Library
modules log (``logging``); ``main`` shows their records on stderr (warnings only with ``--quiet``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from bigearthnet_txt.conversion.logs import setup_logging

COMMAND_MODULES: tuple[str, ...] = (
    "bigearthnet_txt.conversion.commands.convert",
    "bigearthnet_txt.conversion.commands.demo",
    "bigearthnet_txt.conversion.commands.download",
    "bigearthnet_txt.conversion.commands.prepare",
    "bigearthnet_txt.conversion.commands.evaluate",
    "bigearthnet_txt.conversion.commands.push",
    "bigearthnet_txt.conversion.commands.show",
    "bigearthnet_txt.conversion.commands.info",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bigearthnet-txt",
        description="Convert, publish, load, inspect and evaluate BigEarthNet.txt.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"bigearthnet-txt {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
