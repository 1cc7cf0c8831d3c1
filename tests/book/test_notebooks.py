"""A notebook cannot block the batch for ever: a cell past its limit and a dead kernel are named failures, with the
executed copy kept and marked failed (so a rerun of the batch redoes it)."""

import json
from pathlib import Path

import pytest

from evosynth.book.notebooks import NotebookFailed, NotebookJob, execute

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
