"""The packages of `multifusion/` import one way. The two training recipes, `shapes/recipe/` (the tiny model from
scratch on the shapes world) and `fusion/` (real pretrained models fused, then trained on captioned images), use the
general machinery of `training/`, which imports neither of them nor the shapes world; neither recipe imports the
other; and no two subpackages import each other, directly or through other modules.

Every `.py` file is parsed (nothing is imported), and every import in it counts, also one inside a function or under
`TYPE_CHECKING`; relative imports are resolved to module names. `cli.py` is the entry point that runs both recipes,
so it is left out of the paths between packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "multifusion"
MACHINERY = "multifusion.training"
SHAPES = "multifusion.shapes"
TINY_RECIPE = "multifusion.shapes.recipe"
FUSION_RECIPE = "multifusion.fusion"
ENTRY_POINTS = {"multifusion.cli", "multifusion.__main__"}


def modules(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its `__init__.py`)."""
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = (package_dir.name, *path.relative_to(package_dir).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _existing(name: str, known: dict[str, Path]) -> str | None:
    """`name` or its longest prefix that is a module of the package (`pkg.mod.func` -> `pkg.mod`)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that the module `name` at `path` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    root = next(iter(known)).split(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from pkg import mod` imports the module pkg.mod; `from pkg.mod import name` the module pkg.mod
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            if target == root or target.startswith(root + "."):
                module = _existing(target, known)
                if module is not None and module != name:
                    found.add(module)
    return found


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    known = modules(package_dir)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def reachable(graph: dict[str, set[str]], start: str) -> dict[str, str | None]:
    """Every module `start` imports, directly or through others (entry points left out), each with the module it was
    reached from (to print the path)."""
    parents: dict[str, str | None] = {start: None}
    todo = [start]
    while todo:
        module = todo.pop()
        for target in sorted(graph.get(module, ())):
            if target not in parents and target not in ENTRY_POINTS:
                parents[target] = module
                todo.append(target)
    return parents


def path_to(parents: dict[str, str | None], module: str) -> str:
    chain = [module]
    while parents[chain[-1]] is not None:
        chain.append(parents[chain[-1]])
    return " -> ".join(reversed(chain))


def reached(graph: dict[str, set[str]], source: str, forbidden: str) -> list[str]:
    """The paths from modules in package `source` to modules in package `forbidden`."""
    paths = []
    for module in sorted(m for m in graph if within(m, source)):
        parents = reachable(graph, module)
        paths += [path_to(parents, target) for target in parents if within(target, forbidden)]
    return paths


def unit(module: str) -> str:
    """What the cycle check treats as one node: a recipe, the machinery, another subpackage (`shapes`, `families`),
    or a top-level module on its own."""
    for package in (TINY_RECIPE, FUSION_RECIPE, MACHINERY):
        if within(module, package):
            return package
    parts = module.split(".")
    return ".".join(parts[:2])


def package_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one unit in the graph of units (entry points left out) that hold
    a subpackage: packages that import each other, directly or through top-level modules."""
    units: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if module in ENTRY_POINTS:
            continue
        edges = units.setdefault(unit(module), set())
        edges.update(unit(t) for t in targets if t not in ENTRY_POINTS and unit(t) != unit(module))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(units.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            groups.append(sorted(group))

    for node in sorted(units):
        if node not in index:
            visit(node)
    root = next(iter(graph)).split(".")[0]
    packages = {u for u in units if u != root and any(within(m, u) and m != u for m in graph)}
    return [g for g in groups if len(g) > 1 and any(member in packages for member in g)]


def test_the_graph_sees_relative_imports_and_those_inside_functions():
    """A guard on the parser: a top-level relative import, one two levels up, and a lazy one in a function."""
    graph = import_graph()
    assert "multifusion.training.loop" in graph["multifusion.fusion.stage_realign"]
    assert "multifusion.training.losses" in graph["multifusion.shapes.recipe.refine"]
    assert "multifusion.tokenizer" in graph["multifusion.shapes.recipe.data"]  # imported inside shared_tokenizer
    assert {"multifusion.fusion.assemble", "multifusion.shapes.recipe.config"} <= graph["multifusion.cli"]


def test_the_machinery_imports_neither_recipe_nor_the_shapes_world():
    graph = import_graph()
    assert MACHINERY in graph  # (a package renamed would make the check below pass by finding nothing)
    for forbidden in (SHAPES, FUSION_RECIPE):
        assert not reached(graph, MACHINERY, forbidden), f"{MACHINERY} reaches {forbidden}"


def test_neither_recipe_imports_the_other():
    graph = import_graph()
    assert {TINY_RECIPE, FUSION_RECIPE} <= set(graph)
    direct = [f"{m} -> {t}" for m, targets in graph.items() if within(m, FUSION_RECIPE) for t in targets if within(t, SHAPES)]
    assert not direct, "the real-model recipe imports the shapes world"
    assert not reached(graph, FUSION_RECIPE, TINY_RECIPE)
    assert not reached(graph, SHAPES, FUSION_RECIPE)  # the shapes world and its recipe


def test_no_two_packages_import_each_other():
    assert not package_cycles(import_graph())
