"""A notebook cannot block the batch for ever: a cell past its limit and a dead kernel are named failures, with the
executed copy kept and marked failed (so a rerun of the batch redoes it)."""

import json
from pathlib import Path

import pytest

from evosynth.book.notebooks import NotebookFailed, NotebookJob, execute, execute_all
from evosynth.paths import NOTEBOOKS

pytestmark = pytest.mark.slow  # starts Jupyter kernels

HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

"""


def _notebook(folder: Path, *cells: str) -> Path:
    source = folder / "stuck.md"
    source.write_text(HEADER + "\n".join(f"```{{code-cell}} ipython3\n{cell}\n```\n" for cell in cells))
    return source


def _failed_cells(output: Path) -> list[int]:
    notebook = json.loads(output.read_text())
    assert notebook["metadata"]["papermill"]["exception"] is True
    return [index for index, cell in enumerate(notebook["cells"])
            if cell["metadata"]["papermill"]["status"] == "failed"
            and any(out["output_type"] == "error" for out in cell["outputs"])]


@pytest.mark.timeout(120)
def test_a_cell_past_its_limit_fails_fast_naming_the_notebook_the_cell_and_the_limit(tmp_path):
    job = NotebookJob(_notebook(tmp_path, "x = 1", "import time\ntime.sleep(600)", "y = 2"),
                      tmp_path / "out" / "stuck.ipynb", cell_limit_s=3)
    with pytest.raises(NotebookFailed, match=r"stuck\.md: cell 2 of 3 \(first line: 'import time'\) ran past its "
                                             r"limit of 3 s"):
        execute(job, cwd=tmp_path)
    assert _failed_cells(job.output) == [1]
    assert not job.is_done(), "a timed-out notebook must not be skipped by the resuming batch"


@pytest.mark.timeout(120)
def test_a_dead_kernel_is_a_named_failure(tmp_path):
    job = NotebookJob(_notebook(tmp_path, "import os\nos._exit(3)"), tmp_path / "dead.ipynb", cell_limit_s=60)
    with pytest.raises(NotebookFailed, match=r"stuck\.md: the kernel died in cell 1 of 1"):
        execute(job, cwd=tmp_path)
    assert _failed_cells(job.output) == [0]
    assert not job.is_done()


def _page(folder: Path, name: str, *cells: str) -> NotebookJob:
    source = folder / f"{name}.md"
    source.write_text(HEADER + "\n".join(f"```{{code-cell}} ipython3\n{cell}\n```\n" for cell in cells))
    return NotebookJob(source, folder / "out" / f"{name}.ipynb", cell_limit_s=60)


def _printed(output: Path) -> str:
    return "".join("".join(out.get("text", "")) for cell in json.loads(output.read_text())["cells"]
                   for out in cell.get("outputs", []))


@pytest.mark.timeout(180)
def test_pages_executed_two_at_a_time_each_run_in_the_batch_folder_and_a_failure_is_named(tmp_path):
    """The study executes its pages two at a time, each in a process of its own (Papermill changes the working
    directory of the process it runs in): every page runs, in the folder the batch names, and a page that fails
    stops the batch with its own name."""
    batch = tmp_path / "batch"
    batch.mkdir()
    pages = [_page(tmp_path, f"page{index}", "import os", f"print(os.getcwd(), {index} * 7)") for index in range(3)]
    execute_all(pages, cwd=batch, workers=2)
    assert [_printed(page.output).split() for page in pages] == [[str(batch), str(index * 7)] for index in range(3)]
    failing = _page(tmp_path, "broken", "raise ValueError('no such run')")
    with pytest.raises(NotebookFailed, match=r"broken\.md failed in cell 1 with ValueError: no such run"):
        execute_all([pages[0], failing], cwd=batch, workers=2)


VISIBLE_STATEMENTS = 2  # a reader sees the call that draws a chart or a short table, not its bookkeeping
HIDING_TAGS = {"remove-cell", "remove-input", "hide-input", "parameters"}
CODE_PAGES = {"own_network.md"}  # its subject is the code: how to evolve your own network with the library


@pytest.mark.parametrize("source", sorted(set(NOTEBOOKS.glob("*.md")) - {NOTEBOOKS / name for name in CODE_PAGES}),
                         ids=lambda path: path.name)
def test_a_page_shows_only_short_calls_that_draw_never_its_bookkeeping(source):
    import ast

    import jupytext

    notebook = jupytext.read(source)
    for index, cell in enumerate(notebook.cells, 1):
        tags = set(cell.metadata.get("tags", []))
        if cell.cell_type != "code" or tags & HIDING_TAGS:
            continue
        statements = ast.parse(cell.source).body
        where = f"{source.name}, code cell {index} (first line: {cell.source.splitlines()[0]!r})"
        assert len(statements) <= VISIBLE_STATEMENTS, f"{where} shows {len(statements)} statements"
        assert not any(isinstance(statement, ast.If | ast.For | ast.Import | ast.ImportFrom | ast.With)
                       for statement in statements), f"{where} shows control flow or imports"
        assert not any(word in cell.source for word in ("glue_values", "runs_folder", "run_folder")), (
            f"{where} shows bookkeeping (glue, folders)")
