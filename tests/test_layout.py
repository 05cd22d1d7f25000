"""The layout of docs/ARCHITECTURE.md holds: data flows one way, with no import cycle.

Every `import` in jaxtl's source (at any depth, lazy imports inside functions too) is read with
`ast`; the lower layers (`jaxtl.data`, `jaxtl.models`) may import only each other's kind of
building block, never training, configuration or a program.
"""

from __future__ import annotations

import ast
import pathlib

import jaxtl

PACKAGE = pathlib.Path(jaxtl.__file__).parent
# What the lower layers may import from jaxtl besides their own package.
ALLOWED = {
    "jaxtl.data": ("jaxtl.data", "jaxtl.tasks", "jaxtl.errors", "jaxtl.atomic",
                   "jaxtl.config_rules"),
    "jaxtl.models": ("jaxtl.models", "jaxtl.errors"),
}
PROGRAM_MODULES = ("jaxtl.models.__main__",)  # `python -m jaxtl.models`: a program itself


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: pathlib.Path, modules: set[str]) -> set[str]:
    """The jaxtl modules a file imports: `from a.b import c` imports the module a.b.c when
    there is one, else (c is a name in it) the module a.b."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules
                      else node.module for alias in node.names}
    return found & modules


def graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imports_of(path, set(paths)) for name, path in paths.items()}


def test_data_and_models_import_no_training_configuration_or_program():
    wrong = []
    for module, imported in graph().items():
        for layer, allowed in ALLOWED.items():
            if module.startswith(layer) and module not in PROGRAM_MODULES:
                wrong += [f"{module} imports {name}" for name in imported
                          if not name.startswith(allowed)]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle():
    edges = graph()
    state: dict[str, str] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(edges[module]):
            if state.get(imported) == "open":
                cycles.append(" -> ".join(path[path.index(imported):] + [imported]))
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_every_built_in_dataset_package_declares_its_specs():
    from jaxtl.data import registry

    packages = sorted(path.parent.name for path in (PACKAGE / "data").glob("*/__init__.py"))
    declared = {registry.get(name).name for name in registry.names()}
    assert packages == ["bigearthnet", "chest", "consep", "eyepacs", "table", "tfds"]
    assert declared == {"bigearthnet", "chexpert", "consep", "consep_seg", "csv", "cxr14",
                        "eyepacs", "folders", "tfds_bigearthnet", "tfds_chexpert",
                        "tfds_retinopathy"}
