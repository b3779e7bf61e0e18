"""The ``bigearthnet-txt`` command line.

Each sub-command lives in its own module exposing ``register(subparsers)``, which adds the
sub-command's parser and sets ``func`` to a callable taking the parsed ``argparse.Namespace``
and returning an exit code. Modules import their heavy dependencies inside ``func``. Library
modules log (``logging``); ``main`` shows their records on stderr (warnings only with ``--quiet``).

Every failure ends the command with one line on stderr, ``bigearthnet-txt COMMAND: error: …``
(what, where, what to do), and a non-zero exit code: 2 for the documented errors
(``bigearthnet_txt.errors.BigEarthNetTxtError`` and the built-in ``ValueError``/``OSError`` that
the libraries raise for bad input, missing files and unreachable servers), 3 for anything else
(a bug: ``BIGEARTHNET_TXT_TRACEBACK=1`` shows its traceback), 130 on Ctrl-C. A closed output pipe
(``info --json | head``) ends the command quietly with 141, as other command-line tools do.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
from collections.abc import Callable

from bigearthnet_txt.errors import BigEarthNetTxtError

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
DOCUMENTED_ERRORS = (BigEarthNetTxtError, ValueError, OSError)
TRACEBACK_ENV = "BIGEARTHNET_TXT_TRACEBACK"
EXIT_ERROR, EXIT_BUG, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 2, 3, 130, 141


class OneLineParser(argparse.ArgumentParser):
    """``argparse`` parser whose usage errors are one line (with where to read the usage)."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="bigearthnet-txt",
        description="Convert, publish, load, inspect and evaluate BigEarthNet.txt.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (line breaks become ``; ``), never empty."""
    text = re.sub(r"\s*\n\s*", "; ", str(err).strip())
    return text if isinstance(err, DOCUMENTED_ERRORS) and text else f"{type(err).__name__}: {text}"


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run_reporting_errors(prog: str, func: Callable[[], int | None]) -> int:
    """Run ``func`` and turn every failure into one line on stderr and an exit code (module doc)."""
    try:
        return int(func() or 0)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except DOCUMENTED_ERRORS as err:
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as err:  # noqa: BLE001 - a bug: still one line, the traceback on request
        if os.environ.get(TRACEBACK_ENV):
            raise
        print(
            f"{prog}: internal error: {one_line(err)} (set {TRACEBACK_ENV}=1 to see the traceback "
            "and report it)",
            file=sys.stderr,
        )
        return EXIT_BUG


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    return run_reporting_errors(f"bigearthnet-txt {args.command}", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
