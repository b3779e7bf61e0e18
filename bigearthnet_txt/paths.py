"""Where a data set name points: a local converted folder, the data home, or a Hub repository.

API::

    data_home()                      # Path: $BIGEARTHNET_TXT_HOME, default ~/.cache/bigearthnet_txt
    resolve("path/to/folder")        # Path of an existing converted folder
    resolve("bigearthnet_txt")       # data_home() when it holds a converted data set
    resolve("other")                 # data_home() / "other" when that holds one
    resolve("ns/bigearthnet_txt")    # "ns/bigearthnet_txt" (a Hub repository id, str), unless a
                                     # local folder of that name is a converted data set

A converted data set is a folder with the card ``README.md`` and ``data/<task>/`` (what
``bigearthnet-txt convert`` / ``demo`` / ``prepare`` write). A name that resolves to nothing raises
:class:`~bigearthnet_txt.errors.DataNotFoundError` (a ``FileNotFoundError``) listing every place
looked at. ``local_folder(name_or_path)`` is ``resolve`` for commands that read local folders only
(``info``, ``show``, ``evaluate``): a Hub id that is no local folder is an error there too.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from bigearthnet_txt.configs import is_converted
from bigearthnet_txt.errors import DataNotFoundError

HOME_ENV = "BIGEARTHNET_TXT_HOME"
DEFAULT_HOME = Path("~/.cache/bigearthnet_txt")
DEFAULT_NAME = "bigearthnet_txt"
CARD = "README.md"
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def data_home() -> Path:
    """The folder bare names resolve in: ``$BIGEARTHNET_TXT_HOME``,
    else ``~/.cache/bigearthnet_txt``."""
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser() if value else DEFAULT_HOME.expanduser()


def holds_dataset(folder: Path) -> bool:
    """Whether ``folder`` holds a converted data set (card ``README.md`` and ``data/<task>/``)."""
    return (folder / CARD).is_file() and is_converted(folder)


def is_repo_id(name: str) -> bool:
    """Whether ``name`` has the form of a Hub repository id, ``namespace/name``."""
    return bool(_REPO_ID.fullmatch(name)) and not name.startswith(".")


def resolve(name_or_path: str | os.PathLike) -> Path | str:
    """A local converted folder (``Path``) or a Hub repository id (``str``) for ``name_or_path``.

    Order: an existing converted folder at ``name_or_path``; for a bare name (no ``/``),
    ``data_home()`` itself when the name is ``"bigearthnet_txt"`` and ``data_home() / name``;
    a ``namespace/name`` string is a Hub repository id.
    """
    path = Path(name_or_path).expanduser()
    if is_converted(path):
        return path
    looked = [path.resolve()]
    name = str(name_or_path)
    if (
        not isinstance(name_or_path, Path)
        and "/" not in name
        and os.sep not in name
        and name not in (".", "..")
    ):
        home = data_home()
        candidates = ([home] if name == DEFAULT_NAME else []) + [home / name]
        for folder in candidates:
            if holds_dataset(folder):
                return folder
            looked.append(folder)
    elif not isinstance(name_or_path, Path) and is_repo_id(name):
        if path.exists():
            raise DataNotFoundError(
                f"{name}: the local folder {path.resolve()} is not a converted BigEarthNet.txt "
                f"data set (no {CARD} and data/<task>/); convert into it, or run from a folder "
                f"without {name} to load the Hub repository {name!r}"
            )
        return name
    places = ", ".join(str(p) for p in looked)
    raise DataNotFoundError(
        f"{name}: no converted BigEarthNet.txt data set found (a folder with {CARD} and "
        f"data/<task>/). Looked in {places}. Convert one there (bigearthnet-txt demo / prepare, or "
        f"set ${HOME_ENV}), pass the path of a converted folder, or a Hub repository id "
        "'namespace/name'"
    )


def local_folder(name_or_path: str | os.PathLike | None = None) -> Path:
    """The converted local folder that ``name_or_path`` names, resolved as :func:`resolve` does
    (bare names in the data home). ``None``: the current folder when it is a converted data set,
    else the data home's ``bigearthnet_txt``. Raises ``DataNotFoundError`` for anything else."""
    if name_or_path is None:
        name_or_path = "." if is_converted(Path(".")) else DEFAULT_NAME
    target = resolve(name_or_path)
    if isinstance(target, str):
        raise DataNotFoundError(
            f"{target}: no local folder of that name ({Path(target).resolve()} does not exist); "
            "this command reads converted local folders: pass a folder, a name in the data home "
            f"(${HOME_ENV}, default {DEFAULT_HOME}), or download the Hub repository first "
            "(load_dataset reads Hub repositories directly)"
        )
    return target
