"""Claim an output folder for one run: an exclusive lock, and a marker of this tool's folders.

``claim_output_folder(out, command="convert", overwrite=False)`` is a context manager that

1. creates ``out`` and locks ``out/.bigearthnet-txt.lock`` with an OS-level lock (``filelock``:
   ``flock`` on POSIX), held until the block ends; the operating system releases it when the
   process dies, however it dies. A second run on the same folder fails at once with
   :class:`~bigearthnet_txt.errors.OutputFolderBusyError` naming the folder and the holder (pid,
   host, command and start time, from ``out/.bigearthnet-txt.lock.json``);
2. unless ``check_foreign=False``: refuses (:class:`~bigearthnet_txt.errors.ForeignContentError`)
   a folder that holds any of the names this tool writes (``OUTPUT_NAMES``: ``data/``,
   ``imagery.zarr/``, ``README.md``, ...) but no marker ``out/.bigearthnet-txt.json``, i.e.
   content that this tool did not write, unless ``overwrite``; then writes the marker, before any
   other output. Other files in the folder are never touched. A folder converted before markers
   were written is recognised by its ``annotations.json``.

A claim that created ``out`` and leaves nothing in it but its lock file (a run that failed before
writing anything) removes the folder again. Claims nest: a claim of a folder that this process
already holds (``prepare`` and ``demo`` run ``convert``) neither locks again nor checks again.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from bigearthnet_txt.errors import ForeignContentError, OutputFolderBusyError
from bigearthnet_txt.schema import ANNOTATION_SUMMARY, DATA_DIR, IMAGERY_STORE, PATCH_TABLE

LOCK_FILE = ".bigearthnet-txt.lock"
HOLDER_FILE = ".bigearthnet-txt.lock.json"
MARKER_FILE = ".bigearthnet-txt.json"
#: What a run may replace or delete in its output folder.
OUTPUT_NAMES: tuple[str, ...] = (
    DATA_DIR,
    IMAGERY_STORE,
    PATCH_TABLE,
    ANNOTATION_SUMMARY,
    "imagery_report.json",
    "README.md",
)
_HELD: set[Path] = set()


def _holder_text(out: Path) -> str:
    """Who holds the lock of ``out``, as far as its holder file tells."""
    try:
        holder = json.loads((out / HOLDER_FILE).read_text())
        return (
            f"held by pid {holder['pid']} on {holder['host']} "
            f"(bigearthnet-txt {holder['command']}, since {holder['started']})"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "held by another process"


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)


def written_before_markers(out: Path) -> bool:
    """Whether ``out`` holds a conversion summary as ``convert`` wrote it before it wrote markers
    (``annotations.json`` with its ``rows`` and source fingerprint)."""
    try:
        summary = json.loads((out / ANNOTATION_SUMMARY).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and {"rows", "source"} <= summary.keys()


def foreign_content(out: Path, names: tuple[str, ...] = OUTPUT_NAMES) -> list[str]:
    """The ``names`` present in ``out`` when it has no marker (content this tool did not write)."""
    if (out / MARKER_FILE).is_file() or written_before_markers(out):
        return []
    return [name for name in names if (out / name).exists() or (out / name).is_symlink()]


@contextlib.contextmanager
def claim_output_folder(
    out: Path | str,
    command: str = "convert",
    *,
    overwrite: bool = False,
    check_foreign: bool = True,
    names: tuple[str, ...] = OUTPUT_NAMES,
) -> Iterator[Path]:
    """Hold ``out`` exclusively for the block (module docstring); yields ``out`` as a ``Path``."""
    out = Path(out)
    key = out.resolve()
    if key in _HELD:
        yield out
        return
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise OutputFolderBusyError(
            f"{out}: another bigearthnet-txt run is writing this folder ({_holder_text(out)}); "
            "wait for it to finish or choose another output folder"
        ) from None
    except BaseException:
        _remove_if_unused(out, created)
        raise
    _HELD.add(key)
    try:
        started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                  "started": started}  # fmt: skip
        _write_json(out / HOLDER_FILE, holder)
        if check_foreign:
            foreign = [] if overwrite else foreign_content(out, names)
            if foreign:
                raise ForeignContentError(
                    f"{out}: holds {', '.join(foreign)} not written by bigearthnet-txt (no "
                    f"{MARKER_FILE}); choose an empty or new output folder, or pass --overwrite "
                    "to let this run replace them"
                )
            if not (out / MARKER_FILE).is_file():
                _write_json(
                    out / MARKER_FILE,
                    {"written_by": "bigearthnet-txt", "command": command, "created": started},
                )
        yield out
    finally:
        (out / HOLDER_FILE).unlink(missing_ok=True)
        _HELD.discard(key)
        if created and [p.name for p in out.iterdir()] == [LOCK_FILE]:
            (out / LOCK_FILE).unlink(missing_ok=True)  # still locked: no one else starts here
            lock.release()
            _remove_if_unused(out, created)
        else:
            lock.release()


def _remove_if_unused(out: Path, created: bool) -> None:
    """Remove ``out`` when this claim created it and it is empty (another run may have started
    in it meanwhile: then it stays)."""
    if created:
        with contextlib.suppress(OSError):
            out.rmdir()
