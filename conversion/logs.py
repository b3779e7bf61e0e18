"""Logging of the command line: library modules log through ``logging.getLogger(__name__)``; the
commands show those records on stderr (progress bars stay tqdm's)."""

from __future__ import annotations

import logging
import sys

LOGGER_NAME = "bigearthnet_txt"


class _StderrHandler(logging.StreamHandler):
    """Writes to the ``sys.stderr`` of the moment (which tests and tqdm may replace)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(level: int = logging.INFO) -> None:
    """Show the package's log records of ``level`` and above on stderr (one handler per process)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler())
