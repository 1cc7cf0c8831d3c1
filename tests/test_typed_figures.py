"""No measured figure is typed into a page, the README or a docstring: a number with a unit of measurement in
prose goes stale with every default and every machine, so the pages compute theirs (glue) and the rest points to
the page or the benchmark file that does."""

import ast
import re
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
# a number with a unit of speed, size ratio, share or time: 12.3×, 2x, 40 %, 3.1 ms, 37 fps, 25 min, 7 frames per
# second; not a size such as 640×480 or 160 × 128 (a number follows the sign)
FIGURE = re.compile(r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?\s?(?:(?:×|x)(?!\s?\d)(?!\w)|%|ms\b|fps\b|min\b|"
                    r"frames per second|times (?:faster|fewer|smaller))")


def typed_figures(text: str) -> list[str]:
    return [match.group(0) for match in FIGURE.finditer(text)]


def prose_of_notebook(path: Path) -> str:
    return "\n".join(cell.source for cell in jupytext.read(path).cells if cell.cell_type == "markdown")


def docstrings(path: Path) -> str:
    tree = ast.parse(path.read_text())
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))]
    return "\n".join(doc for node in nodes if (doc := ast.get_docstring(node)))


def test_the_detector_finds_figures_and_leaves_sizes_alone():
    assert typed_figures("ran 3.79× faster, 140 fps, 8.15x fewer MACs, 41 min, 2.5 % and 12.3 ms") == [
        "3.79×", "140 fps", "8.15x", "41 min", "2.5 %", "12.3 ms"]
    assert typed_figures("a 640×480 frame, 160 × 128 pixels, conv 1, seed 0, x = 3") == []


def test_no_page_readme_or_docstring_holds_a_typed_figure():
    sources = {path: path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md"))]}
    sources |= {path: prose_of_notebook(path) for path in sorted((ROOT / "notebooks").glob("*.md"))}
    sources |= {path: docstrings(path) for path in sorted((ROOT / "src").rglob("*.py"))}
    found = {str(path.relative_to(ROOT)): figures for path, text in sources.items() if (figures := typed_figures(text))}
    assert found == {}, "figures typed into prose (compute them on the page, or point to where they are computed)"
