"""The layout of docs/ARCHITECTURE.md holds: packages in layers, imports only downward, no cycle.

Every `import` in jaxtl's source and in the converters' (tools/convert_weights/, installed as
`jaxtl.convert_weights`) is read with `ast`: at any depth, lazy imports inside functions and
relative imports too. A module may import its own package and the packages of lower layers,
never a package of its own layer or above. Programs (`jaxtl.commands`, `jaxtl.main`, every
`__main__` and the converters) sit on top: they may import any library module, and of the
programs only `jaxtl.commands.cli`, the shape every program shares (the converters also import
each other: one package of programs).
"""

from __future__ import annotations

import ast
import functools
import pathlib

import jaxtl

PACKAGE = pathlib.Path(jaxtl.__file__).parent
# Bottom to top; packages of one layer do not import each other.
LAYERS = (
    ("jaxtl", "jaxtl.core"),
    ("jaxtl.data", "jaxtl.models", "jaxtl.metrics"),
    ("jaxtl.optim",),
    ("jaxtl.config",),
    ("jaxtl.workdir",),
    ("jaxtl.conversion",),
    ("jaxtl.engine",),
    ("jaxtl.evaluators",),
    ("jaxtl.training", "jaxtl.explain", "jaxtl.sweep"),
    ("jaxtl.report",),
)
SHARED_BY_PROGRAMS = "jaxtl.commands.cli"
# Top-level programs: `python -m jaxtl.main`, and `python -m jaxtl.export`, which runs
# jaxtl.commands.export (runpy, not an import).
TOP_LEVEL_PROGRAMS = ("jaxtl.main", "jaxtl.export")
CONVERTERS = "jaxtl.convert_weights"  # tools/convert_weights/, programs over jaxtl.conversion


def converters_folder() -> pathlib.Path:
    """tools/convert_weights/: as installed (or linked in a checkout) beside jaxtl's modules,
    else in the checkout that holds jaxtl."""
    installed = PACKAGE / CONVERTERS.rpartition(".")[2]
    for folder in (installed, PACKAGE.parent / "tools" / installed.name):
        if (folder / "__init__.py").is_file():
            return folder
    raise AssertionError(f"no {CONVERTERS} beside {PACKAGE} nor tools/convert_weights/ in the "
                         f"checkout: the converters cannot be checked")


@functools.cache
def sources() -> dict[str, pathlib.Path]:
    """Every module of jaxtl and of the converters, by its name."""
    converters = converters_folder()
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if converters.resolve() not in path.resolve().parents:  # an installed copy: below
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in converters.glob("*.py"):
        found[CONVERTERS if path.stem == "__init__" else f"{CONVERTERS}.{path.stem}"] = path
    return found


def imports_of(name: str, path: pathlib.Path, modules: set[str]) -> set[str]:
    """The jaxtl modules a file imports: `from a.b import c` imports the module a.b.c when
    there is one, else (c is a name in it) the module a.b; `from .x import c` is read from
    the file's own package."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1]
            module = (".".join([*base, node.module] if node.module else base)
                      if node.level else node.module)
            found |= {f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules
                      else module for alias in node.names}
    return found & modules


@functools.cache
def graph() -> dict[str, frozenset[str]]:
    paths = sources()
    return {name: frozenset(imports_of(name, path, set(paths))) for name, path in paths.items()}


def is_program(module: str) -> bool:
    return (module in TOP_LEVEL_PROGRAMS or module.endswith(".__main__")
            or package_of(module) == CONVERTERS
            or (module.startswith("jaxtl.commands") and module != SHARED_BY_PROGRAMS))


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def layer_of(module: str) -> int:
    package = package_of(module) if module != "jaxtl" else "jaxtl"
    for index, packages in enumerate(LAYERS):
        if package in packages:
            return index
    return len(LAYERS)  # programs and cli


def test_every_package_has_a_layer():
    packages = {package_of(module) for module in graph() if not is_program(module)}
    placed = {package for layer in LAYERS for package in layer} | {"jaxtl.commands"}
    assert packages <= placed, f"add to LAYERS (and docs/ARCHITECTURE.md): {packages - placed}"


def test_imports_go_down_only():
    wrong = []
    for module, imported in graph().items():
        for name in imported:
            if is_program(module):
                converters = package_of(module) == package_of(name) == CONVERTERS
                if is_program(name) and not converters:
                    wrong.append(f"program {module} imports program {name}")
                continue
            own = package_of(name) == package_of(module)
            if not own and layer_of(name) >= layer_of(module) and name != "jaxtl":
                wrong.append(f"{module} (layer {layer_of(module)}) imports {name} "
                             f"(layer {layer_of(name)})")
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


def test_no_two_modules_differ_only_by_a_suffix():
    """`compare` beside `comparison`, `run` beside `rundir`: names that say too little."""
    stems = sorted({path.stem for path in sources().values() if path.stem != "__init__"}
                   | {path.name for path in PACKAGE.rglob("*") if path.is_dir()
                      and path.name != "__pycache__"} | {converters_folder().name})
    close = [(a, b) for a in stems for b in stems
             if a != b and b.startswith(a) and b[len(a):] in ("s", "ing", "ion", "dir", "log",
                                                              "_rules", "_files", "uration")]
    assert not close, close


def test_every_built_in_dataset_package_declares_its_specs():
    """Each package under jaxtl/data/ with DATASETS is found by the registry, and every name
    the registry lists comes from one of them."""
    import importlib

    from jaxtl.data import registry

    declared = set()
    for init in (PACKAGE / "data").glob("*/__init__.py"):
        module = importlib.import_module(f"jaxtl.data.{init.parent.name}")
        specs = getattr(module, "DATASETS", ())
        assert specs, f"jaxtl/data/{init.parent.name}/ declares no DATASETS"
        declared |= {spec.name for spec in specs}
    assert declared == set(registry.names())
    assert all(registry.get(name).name == name for name in registry.names())


def test_test_modules_have_unique_names():
    """pytest imports test modules by their file name (tests/ has no packages): two files of one
    name in different folders would stop collection."""
    tests = pathlib.Path(__file__).parent
    names = [path.name for path in tests.rglob("test_*.py")]
    assert sorted(set(names)) == sorted(names), sorted({n for n in names if names.count(n) > 1})
