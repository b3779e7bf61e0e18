"""The imagery reader as it was at an earlier commit, importable next to the current one.

``filed_store_class(commit, work)`` copies ``store.py``, ``shards.py`` and ``schema.py`` of
``bigearthnet_txt`` at ``commit`` (``git show``) into the package ``filed_<commit>`` under
``work``, with their ``bigearthnet_txt.`` imports pointed at that package, and returns its
``ImageryStore`` class. The read benchmark runs the reader of the commit an issue was filed
against, in the same process and rounds as the current one, instead of a reconstruction of it.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODULES = ("schema", "shards", "store")  # what store.py imported at the commits this serves


def filed_store_class(commit: str, work: Path) -> type:
    """``ImageryStore`` of ``bigearthnet_txt`` at ``commit`` (see the module docstring)."""
    package = f"filed_{commit}"
    folder = work / package
    folder.mkdir(parents=True, exist_ok=True)
    for name in MODULES:
        source = subprocess.run(
            ["git", "show", f"{commit}:bigearthnet_txt/{name}.py"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        wanted = set(re.findall(r"^from bigearthnet_txt\.(\w+) import", source, re.M))
        if not wanted <= set(MODULES):
            raise RuntimeError(
                f"{name}.py at {commit} also imports {sorted(wanted - set(MODULES))}"
            )
        source = re.sub(r"^from bigearthnet_txt\.", f"from {package}.", source, flags=re.M)
        (folder / f"{name}.py").write_text(source)
    (folder / "__init__.py").write_text(f'"""bigearthnet_txt reader modules at {commit}."""\n')
    if str(work) not in sys.path:
        sys.path.insert(0, str(work))
    importlib.invalidate_caches()
    return importlib.import_module(f"{package}.store").ImageryStore
