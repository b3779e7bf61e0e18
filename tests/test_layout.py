"""Project rules that code review alone would miss."""

from __future__ import annotations

import ast
from pathlib import Path

import bigearthnet_txt

READ_SIDE = Path(bigearthnet_txt.__file__).parent
#: Write-side packages, installed inside the ``bigearthnet_txt`` namespace.
WRITE_SIDE = (
    "bigearthnet_txt.conversion",
    "bigearthnet_txt.dataset_card",
    "conversion",
    "dataset_card",
)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_read_side_never_imports_the_write_side():
    files = sorted(READ_SIDE.glob("*.py"))  # the read side is flat; the write side is linked in
    assert len(files) > 10
    offenders = {f.name: sorted(n for n in _imports(f) if n.startswith(WRITE_SIDE)) for f in files}
    assert {f: n for f, n in offenders.items() if n} == {}


def test_command_line_lists_its_commands(capsys):
    import pytest

    from bigearthnet_txt.conversion.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "convert" in capsys.readouterr().out
