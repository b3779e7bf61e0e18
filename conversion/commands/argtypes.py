"""Argument types of the command line that reject bad values while parsing (usage error, exit 2),
and the data set argument the reading commands share."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer ≥ 1 (counts and sizes: ``--shard-size``, ``--workers``, ``--rows-per-shard``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (``--temperature``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


DATA_HELP = (
    "converted data set folder, or a name in the data home as load_dataset takes it "
    "(default: the current folder if converted, else the data home's bigearthnet_txt)"
)


def add_data_argument(parser: argparse.ArgumentParser, *names: str, **options) -> None:
    """The data set a reading command works on (``info``, ``show``, ``evaluate``), resolved by
    ``bigearthnet_txt.paths.local_folder``; ``names`` as for ``add_argument``."""
    parser.add_argument(*names, default=None, metavar="DIR_OR_NAME", help=DATA_HELP, **options)
