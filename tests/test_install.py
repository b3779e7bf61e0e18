"""The installed package: namespaced names only, and immune to a data folder named like it.

These run a fresh interpreter from an empty folder with ``PYTHONPATH`` cleared, so they see what a
user of the installed package sees (not this checkout). They need a regular (non-editable) install,
the one the README's two commands make; an editable install is reported as a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from importlib import metadata

import pytest


def _editable() -> bool:
    """Whether the environment's install (not an ``.egg-info`` in this checkout) is editable."""
    site = sysconfig.get_paths()["purelib"]
    dists = list(metadata.distributions(name="bigearthnet_txt", path=[site]))
    if not dists:
        return True
    text = dists[0].read_text("direct_url.json")
    return bool(text and json.loads(text).get("dir_info", {}).get("editable"))


pytestmark = pytest.mark.skipif(
    _editable(), reason="needs the README's regular install (`pip install .`), not an editable one"
)


def _python(code: str, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("name", ["conversion", "dataset_card"])
def test_no_generic_top_level_names(tmp_path, name):
    proc = _python(f"import {name}", tmp_path)
    assert proc.returncode != 0
    assert "ModuleNotFoundError" in proc.stderr


def test_write_side_is_namespaced(tmp_path):
    proc = _python(
        "import bigearthnet_txt.conversion.cli as c, bigearthnet_txt.dataset_card as d; "
        "print(c.__name__, d.__name__)",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["bigearthnet_txt.conversion.cli", "bigearthnet_txt.dataset_card"]


def test_a_data_folder_named_like_the_package_does_not_hide_it(tmp_path):
    # Where `load_dataset("bigearthnet_txt", ...)` users keep their data: ./bigearthnet_txt/
    data = tmp_path / "bigearthnet_txt"
    (data / "data" / "vqa").mkdir(parents=True)
    (data / "README.md").write_text("a converted data set\n")
    proc = _python(
        "from bigearthnet_txt import load_dataset, BigEarthNetTxt; "
        "import bigearthnet_txt; print(bigearthnet_txt.__file__)",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert str(tmp_path) not in proc.stdout
