"""The package's import graph: no cycles (counting imports inside functions, so that none can hide
one) and no module importing another module's private names."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import bigearthnet_txt

PACKAGE = Path(bigearthnet_txt.__file__).parent


def package_modules() -> dict[str, Path]:
    """``{dotted name: file}`` of every module under ``bigearthnet_txt`` (write side included,
    through its link ``bigearthnet_txt/conversion``)."""
    modules = {}
    files = [Path(d) / f for d, _, fs in os.walk(PACKAGE, followlinks=True) for f in fs]
    for path in sorted(f for f in files if f.suffix == ".py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(["bigearthnet_txt", *parts])] = path
    return modules


def imports_of(path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str], int]]:
    """``(module, imported names, line)`` of every import of a package module in ``path``, at any
    depth; ``from pkg import mod`` counts as importing ``pkg.mod``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name in modules]
        elif isinstance(node, ast.ImportFrom) and node.module in modules:
            names = [a.name for a in node.names]
            submodules = [f"{node.module}.{n}" for n in names if f"{node.module}.{n}" in modules]
            found.append((node.module, [n for n in names if f"{node.module}.{n}" not in modules],
                          node.lineno))  # fmt: skip
            found += [(m, [], node.lineno) for m in submodules]
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (``[a, b, ..., a]``), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def package_of(module: str, modules: dict[str, Path]) -> str:
    return module if modules[module].name == "__init__.py" else module.rsplit(".", 1)[0]


def test_no_import_cycle():
    modules = package_modules()
    graph = {
        name: {target for target, _, _ in imports_of(path, modules) if target != name}
        for name, path in modules.items()
    }
    # a package's __init__ importing its own modules is not a cycle through them
    for name, targets in graph.items():
        if modules[name].name == "__init__.py":
            targets -= {t for t in targets if t.startswith(name + ".")}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_no_private_names_imported_from_another_module():
    modules = package_modules()
    offences = [
        f"{path.relative_to(PACKAGE)}:{line}: {target}.{name}"
        for module, path in modules.items()
        for target, names, line in imports_of(path, modules)
        for name in names
        if name.startswith("_") and target != module
    ]
    assert not offences


def test_the_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module", ["bigearthnet_txt.conversion.remote"])
def test_graph_sees_imports_inside_functions(module, tmp_path):
    source = tmp_path / "m.py"
    source.write_text(f"def f():\n    from {module} import RemoteFile\n")
    assert imports_of(source, package_modules()) == [(module, ["RemoteFile"], 2)]
