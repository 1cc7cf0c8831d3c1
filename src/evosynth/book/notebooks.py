"""The Papermill engine: executes one MyST notebook with its parameters into the page the book renders, under a
limit per cell and for the kernel's start, so that a notebook that fails, hangs or loses its kernel is a named
failure with its executed copy kept."""

from __future__ import annotations

import json
import multiprocessing
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from evosynth.book.offline import add_book_embeds
from evosynth.errors import EvosynthError
from evosynth.paths import REPO_ROOT


class NotebookFailed(EvosynthError):
    """A notebook raised, ran past its cell limit or lost its kernel; its executed copy is kept for inspection."""


KERNEL_START_LIMIT_S = 120  # a kernel starts in 2-5 s here; longer means it will not start
# How long one cell may run, per notebook, in seconds, sized from measured times on the 2-core CPU kinds: the
# slowest generation cell (where the run lacks the generation) trains the ancestor, 150 s on the AMD EPYC kind and
# 300 s on the Intel Xeon kind. The chapters only read what the study computed before them (a few seconds a cell);
# a cell still running after 15 minutes is not going to end, and the batch says so.
GENERATION_CELL_LIMIT_S = 1800
CHAPTER_CELL_LIMIT_S = 900


@dataclass(frozen=True)
class NotebookJob:
    """One Papermill execution: a MyST notebook, where its executed copy goes, its parameters and how long one of
    its cells may run."""

    source: Path
    output: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    cell_limit_s: float = CHAPTER_CELL_LIMIT_S
    # cells with any of these tags are executed but left out of the page (tagged remove-cell in the executed copy):
    # how one notebook reads right for the ancestor and for an offspring, or with and without its data
    hidden_tags: tuple[str, ...] = ()

    def is_done(self) -> bool:
        """Finished earlier with the same parameters and no error, after the notebook's source last changed."""
        if not self.output.is_file() or self.output.stat().st_mtime < self.source.stat().st_mtime:
            return False
        try:
            metadata = json.loads(self.output.read_text())["metadata"].get("papermill", {})
        except (json.JSONDecodeError, KeyError, UnicodeDecodeError):
            return False
        return (
            metadata.get("end_time") is not None
            and not metadata.get("exception")
            and metadata.get("parameters") == json.loads(json.dumps(self.parameters))
        )


def execute(job: NotebookJob, cwd: Path = REPO_ROOT) -> None:
    """Run one notebook with Papermill under the job's cell limit and the kernel start limit.

    A failing cell, a cell past its limit and a kernel that died or did not start are all a ``NotebookFailed``
    naming the notebook and the cell, with the executed copy kept (and marked failed, so a rerun redoes it).
    A notebook that timed out is not retried automatically: with live widgets kept out of headless runs (see
    ``display.live_controls``) nothing here is known to hang by chance, so a timeout means a machine too slow for
    the limit or a regression, and a retry would only double the wait; the batch resumes, so rerunning the
    command redoes just this notebook.
    """
    import jupytext
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    job.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / (job.source.stem + ".ipynb")
        jupytext.write(jupytext.read(job.source), source)
        try:
            papermill.execute_notebook(
                str(source), str(job.output), parameters=job.parameters, kernel_name="python3",
                cwd=str(cwd), progress_bar=False, execution_timeout=job.cell_limit_s,
                start_timeout=KERNEL_START_LIMIT_S,
            )
        except PapermillExecutionError as error:
            raise NotebookFailed(
                f"{job.source.name} failed in cell {error.exec_count} with {error.ename}: {error.evalue}\n"
                f"cell source:\n{error.source}\nthe executed notebook is kept at {job.output}"
            ) from error
        except CellTimeoutError as error:
            cell = _mark_interrupted(job.output, f"CellTimeoutError: the cell ran past its limit of "
                                                 f"{job.cell_limit_s:g} s")
            raise NotebookFailed(
                f"{job.source.name}: cell {cell} ran past its limit of {job.cell_limit_s:g} s and was stopped\n"
                f"the executed notebook is kept at {job.output}"
            ) from error
        except DeadKernelError as error:
            cell = _mark_interrupted(job.output, f"DeadKernelError: {error}")
            raise NotebookFailed(
                f"{job.source.name}: the kernel died in cell {cell} ({error})\n"
                f"the executed notebook is kept at {job.output}"
            ) from error
        except RuntimeError as error:  # jupyter_client: the kernel did not start within the limit
            if "Kernel didn't respond" not in str(error):
                raise
            raise NotebookFailed(
                f"{job.source.name}: the kernel did not start within {KERNEL_START_LIMIT_S} s ({error})"
            ) from error
    _prepare_for_book(job.output, job.hidden_tags)


REMOVE_CELL = "remove-cell"  # MyST-NB leaves such a cell out of the rendered page


# Papermill's cell of the parameters it was given (the building machine's paths): no page shows it
INJECTED_PARAMETERS = "injected-parameters"


def _prepare_for_book(output: Path, hidden_tags: Sequence[str]) -> None:
    """Make the executed notebook the page the book renders: every chart gets the script that draws it in the
    static book (``offline.add_book_embeds``), and Papermill's parameters cell and every cell that carries one of
    ``hidden_tags`` are tagged so that the book leaves them out."""
    import nbformat

    notebook = nbformat.read(output, as_version=4)
    add_book_embeds(notebook)
    for cell in notebook.cells:
        cell_tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if {INJECTED_PARAMETERS, *hidden_tags} & set(cell_tags) and REMOVE_CELL not in cell_tags:
            cell_tags.append(REMOVE_CELL)
    nbformat.write(notebook, output)


def _mark_interrupted(output: Path, reason: str) -> str:
    """Mark the cell that was running when execution stopped as failed in the kept copy (Papermill records it as
    completed), with ``reason`` as its error output; returns how the cell is named in the message."""
    import nbformat

    if not output.is_file():
        return "(none: the notebook was not written)"
    notebook = nbformat.read(output, as_version=4)
    started = [(index, cell) for index, cell in enumerate(notebook.cells)
               if cell.get("metadata", {}).get("papermill", {}).get("start_time")]
    if not started:
        return "(none had started)"
    index, cell = started[-1]
    cell.metadata.papermill["status"] = "failed"
    cell.metadata.papermill["exception"] = True
    name, _, value = reason.partition(": ")
    cell.outputs.append(nbformat.v4.new_output("error", ename=name, evalue=value, traceback=[reason]))
    notebook.metadata.setdefault("papermill", {})["exception"] = True
    nbformat.write(notebook, output)
    first_line = next((line for line in cell.source.splitlines() if line.strip()), "")
    return f"{index + 1} of {len(notebook.cells)} (first line: {first_line!r})"


def execute_all(jobs: Sequence[NotebookJob], cwd: Path = REPO_ROOT, skip_done: bool = False, workers: int = 1
                ) -> None:
    """Execute ``jobs`` (those not done already where ``skip_done``), ``workers`` at a time in processes of their
    own: Papermill changes the working directory of the process it runs in, so two executions never share one.
    The first failure stops what has not started, lets the running ones finish, and is raised."""
    pending = [job for job in jobs if not (skip_done and job.is_done())]
    if workers <= 1:
        for job in tqdm(pending, desc="notebooks", unit="nb"):
            execute(job, cwd)
        return
    failures: list[BaseException] = []
    with (ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool,
          tqdm(total=len(pending), desc="notebooks", unit="nb") as progress):
        running = {pool.submit(execute, job, cwd): job for job in pending}
        for finished in as_completed(running):
            progress.update()
            error = finished.exception() if not finished.cancelled() else None
            if isinstance(error, BrokenProcessPool):  # the process itself died: killed for memory, or a script
                # without an ``if __name__ == "__main__":`` guard, which every process it starts runs again
                error = NotebookFailed(f"{running[finished].source.name}: the process executing it died ({error}); "
                                       "a script that runs the batch must guard it with if __name__ == '__main__'")
            if error is not None and not failures:
                failures.append(error)
                for future in running:
                    future.cancel()
    if failures:
        raise failures[0]
