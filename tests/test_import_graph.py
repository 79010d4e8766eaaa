"""The package's import graph: no cycles, and the layers import one way.

Parsed from the source (every ``import``, also inside functions and ``TYPE_CHECKING``
blocks), so a function-level import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dino_speech"

# lower layers never import these
FORBIDDEN = {
    "dino_speech.data": ("dino_speech.models", "dino_speech.ssl", "dino_speech.train"),
    "dino_speech.models": ("dino_speech.train", "dino_speech.pseudo_label", "dino_speech.ssl"),
    "dino_speech.ssl": ("dino_speech.train", "dino_speech.pseudo_label"),
    "dino_speech.train": ("dino_speech.pseudo_label",),
    "dino_speech.eval": ("dino_speech.train", "dino_speech.pseudo_label"),
}


def module_files(root: Path) -> dict[str, Path]:
    files = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` (at ``path``) imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import name`` mod
            candidates = [
                f"{base_name}.{a.name}" if f"{base_name}.{a.name}" in known else base_name
                for a in node.names
            ]
        else:
            continue
        found.update(c for c in candidates if c in known and c != name)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    files = module_files(root)
    known = set(files)
    return {name: imported_modules(name, path, known) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_higher_ones(layer):
    bad = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if module == layer or module.startswith(layer + ".")
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in FORBIDDEN[layer])
    )
    assert not bad, "; ".join(bad)


def test_only_the_cli_imports_the_cli():
    bad = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if not module.startswith("dino_speech.cli")
        for target in targets
        if target.startswith("dino_speech.cli")
    )
    assert not bad, "; ".join(bad)


def test_the_cycle_finder_finds_cycles_hidden_in_functions(tmp_path):
    pkg = tmp_path / "dino_speech"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from dino_speech import b\n")
    (pkg / "b.py").write_text("def f():\n    from dino_speech.c import g\n")
    (pkg / "c.py").write_text("from .a import x\n")
    assert find_cycle(import_graph(pkg)) == [
        "dino_speech.a",
        "dino_speech.b",
        "dino_speech.c",
        "dino_speech.a",
    ]
    (pkg / "c.py").write_text("import os\n")
    assert find_cycle(import_graph(pkg)) is None
