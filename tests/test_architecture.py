"""The package tree's promises, read from the source: no import cycles, lower layers never import
higher ones, and the reading packages never import TensorFlow (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dlcli"
# From the bottom up: a module may import its own layer and those below it, never one above.
LAYERS = [
    {
        "dlcli", "dlcli.errors", "dlcli.choices", "dlcli.columns", "dlcli.keys", "dlcli.outputs", "dlcli.faults",
        "dlcli.stopping", "dlcli.data.catalog",
    },
    {"dlcli.config"},
    {"dlcli.store"},
    {"dlcli.data"},
    {"dlcli.curves"},
    {"dlcli.build"},
    {"dlcli.training", "dlcli.use"},
    {"dlcli.sweep"},
    {"dlcli.report"},
    {"dlcli.cli", "dlcli.launch", "dlcli.__main__"},
]
# Never TensorFlow or Keras at import time, themselves or through what they import.
WITHOUT_TENSORFLOW = ["dlcli.config", "dlcli.store", "dlcli.curves", "dlcli.report", "dlcli.sweep.study", "dlcli.cli"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _owner(name: str) -> str | None:
    """The dlcli module an imported name lives in (`dlcli.store.runs.RunFolder` -> `dlcli.store.runs`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, top_level_only: bool) -> set[str]:
    """What `module` imports, outside `if TYPE_CHECKING:` blocks; with `top_level_only`, not the
    imports inside functions (made when called, not when the module is imported)."""
    tree = ast.parse(MODULES[module].read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if top_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
            found.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _dlcli_imports(module: str, top_level_only: bool = False) -> set[str]:
    owners = {_owner(name) for name in _imports(module, top_level_only) if name.split(".")[0] == "dlcli"}
    return owners - {None, module}


def _layer(module: str) -> int:
    matches = [
        (len(prefix), index) for index, layer in enumerate(LAYERS) for prefix in layer
        if module == prefix or module.startswith(prefix + ".")
    ]
    assert matches, f"{module} belongs to no layer of docs/architecture.md: add it to LAYERS"
    return max(matches)[1]


def test_no_import_cycles():
    graph = {module: _dlcli_imports(module) for module in MODULES}
    # a module's ancestors' __init__ run first, but only a package's own imports count here
    finished: set[str] = set()

    def walk(module: str, path: list[str]) -> None:
        if module in path:
            pytest.fail("import cycle: " + " -> ".join([*path[path.index(module):], module]))
        if module in finished:
            return
        for target in graph[module]:
            walk(target, [*path, module])
        finished.add(module)

    for module in sorted(graph):
        walk(module, [])


def test_lower_layers_never_import_higher_ones():
    upward = [
        f"{module} imports {target}"
        for module in sorted(MODULES)
        for target in sorted(_dlcli_imports(module))
        if _layer(target) > _layer(module)
    ]
    assert upward == []


@pytest.mark.parametrize("root", WITHOUT_TENSORFLOW)
def test_reading_packages_never_import_tensorflow(root):
    seen, todo = set(), [module for module in MODULES if module == root or module.startswith(root + ".")]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        third_party = {name.split(".")[0] for name in _imports(module, top_level_only=True)}
        assert not third_party & {"tensorflow", "keras"}, f"{module} imports TensorFlow at import time (from {root})"
        todo.extend(_dlcli_imports(module, top_level_only=True))
