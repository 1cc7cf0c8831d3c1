"""The layering of docs/architecture.md, enforced: a module imports only its own layer or lower ones, and no
modules import each other around a loop. Every import counts, including those inside functions."""

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"

# Bottom up, as in docs/architecture.md; a module belongs to the layer of its longest matching prefix.
LAYERS = {
    "evosynth.errors": 0,
    "evosynth.files": 0,
    "evosynth.paths": 0,
    "evosynth.core": 1,
    "evosynth.task": 2,
    "evosynth.storage": 3,
    "evosynth.deploy": 4,
    "evosynth.study": 5,
    "evosynth.book": 6,
    "evosynth.cli": 7,
}
PACKAGE_DOCS = {"evosynth"}  # the package __init__: a docstring only, no layer


def modules(root: Path = SOURCE) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def layer_of(module: str) -> int:
    matches = [prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")]
    if not matches:
        raise AssertionError(f"{module} belongs to no layer: add it to docs/architecture.md and LAYERS")
    return LAYERS[max(matches, key=len)]


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The evosynth modules a file imports (``from package import module`` counts as the module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("evosynth")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("evosynth"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return found & known


def import_graph(root: Path = SOURCE) -> dict[str, set[str]]:
    found = modules(root)
    return {name: imports_of(path, set(found)) - {name} for name, path in found.items()}


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    return [f"{importer} (layer {layer_of(importer)}) imports {imported} (layer {layer_of(imported)})"
            for importer, imported_modules in sorted(graph.items()) if importer not in PACKAGE_DOCS
            for imported in sorted(imported_modules)
            if imported not in PACKAGE_DOCS and layer_of(imported) > layer_of(importer)]


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every loop of imports found by a depth-first search (each reported once, from its first module)."""
    cycles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                cycles.append(path[path.index(imported):] + [imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_every_module_imports_only_its_layer_or_lower_ones():
    assert layer_violations(import_graph()) == []


def test_no_modules_import_each_other_around_a_loop():
    assert import_cycles(import_graph()) == []


def test_the_library_never_imports_the_notebooks_the_cli_or_the_book_from_below():
    graph = import_graph()
    assert not [m for m, imported in graph.items() if not m.startswith("evosynth.cli") and "evosynth.cli" in imported]


@pytest.mark.parametrize("bad_import, imported", [
    ("from evosynth.study.evolution import evolve", "evosynth.study.evolution"),
    ("def later():\n    from evosynth.book import charts", "evosynth.book.charts"),
])
def test_the_rule_catches_a_deployment_module_that_imports_the_study(tmp_path, bad_import, imported):
    copy = tmp_path / "src"
    for name, path in modules().items():
        target = copy / path.relative_to(SOURCE)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text()
        target.write_text(text + "\n" + bad_import + "\n" if name == "evosynth.deploy.export" else text)
    finding = f"evosynth.deploy.export (layer 4) imports {imported}"
    assert finding in "\n".join(layer_violations(import_graph(copy)))


def test_the_architecture_page_names_every_module_there_is():
    page = (SOURCE.parent / "docs" / "architecture.md").read_text()
    named = {name.removeprefix("evosynth.") for name, path in modules().items()
             if path.name != "__init__.py" and name.count(".") >= 1}
    missing = sorted(name for name in named
                     if f"`{name.replace('.', '/')}.py`" not in page and not name.startswith("book.pages."))
    assert missing == [], "add them to docs/architecture.md"


def test_commands_and_their_options_live_in_the_cli_only():
    parsers = [name for name, path in modules().items() if "add_subparsers(" in path.read_text()
               or ".add_parser(" in path.read_text()]
    assert parsers == ["evosynth.cli"]


def test_the_cycle_search_finds_a_loop():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
