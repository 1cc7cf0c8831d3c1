"""The study batch: every run is computed by the library (``evolve``), then Papermill executes the generation
notebook once per generation and the other notebooks into the book's source tree; Jupyter Book renders them as
they are.

Runs resume generation by generation, and a rerun of the batch skips the generation notebooks that finished.
A generation notebook opened on its own computes its generation when the run lacks it, through the same library.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from evosynth.book.offline import add_book_embeds, find_network_references, vendor_is_complete
from evosynth.deploy.benchmark import BACKENDS, DEFAULT_ROUNDS, bench_is_current, benchmark_run
from evosynth.deploy.machine import describe_machine, machine_summary
from evosynth.errors import EvosynthError
from evosynth.files import write_json
from evosynth.study.capacity import STUDY_SCALES, measure_capacity, measure_width_curve
from evosynth.study.compare import get_comparison, run_comparison
from evosynth.study.config import RunConfig, default_preset
from evosynth.study.distributed import run_grid
from evosynth.study.evolution import evolve
from evosynth.study.grid import SweepGrid, load_sweep
from evosynth.study.sweep import DEFAULT_ALPHA_CLUSTERS, run_sweep, sweep_configs
from evosynth.task.download import PENNFUDAN

REPO_ROOT = Path(__file__).resolve().parents[3]  # the study runs from a checkout (editable install)
NOTEBOOKS = REPO_ROOT / "notebooks"
BOOK_DIR = REPO_ROOT / "book"


def vendor_dir(book_dir: Path) -> Path:
    """Where set-up puts the book's JavaScript (``html_extra_path: _vendor`` serves it as ``_static/vendor``)."""
    return book_dir / "_vendor" / "_static" / "vendor"


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


def _prepare_for_book(output: Path, hidden_tags: Sequence[str]) -> None:
    """Make the executed notebook the page the book renders: every chart gets the script that draws it in the
    static book (``offline.add_book_embeds``), and every cell that carries one of ``hidden_tags`` is tagged so
    that the book leaves it out."""
    import nbformat

    notebook = nbformat.read(output, as_version=4)
    add_book_embeds(notebook)
    for cell in notebook.cells:
        cell_tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if set(hidden_tags) & set(cell_tags) and REMOVE_CELL not in cell_tags:
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


def execute_all(jobs: Sequence[NotebookJob], cwd: Path = REPO_ROOT, skip_done: bool = False) -> None:
    for job in tqdm(jobs, desc="notebooks", unit="nb"):
        if skip_done and job.is_done():
            continue
        execute(job, cwd)


# The generation notebook's cells that only the ancestor's page shows, and those that only an offspring's shows
ANCESTOR_TAG, OFFSPRING_TAG = "ancestor", "offspring"
# Papermill's cell of the parameters it was given: pages that name their run in the prose leave it out
INJECTED_PARAMETERS = "injected-parameters"
# The pedestrians notebook's cells that need its run, and the one that says the build has none
WITH_RUN_TAG, WITHOUT_RUN_TAG = "with-run", "without-run"


def generation_jobs(config: RunConfig, run_dir: Path, cache_dir: Path, generated: Path) -> list[NotebookJob]:
    """One job per generation; the notebook's parameters are the run configuration's settings."""
    common = {**config.parameters(), "run_dir": str(run_dir.resolve()), "cache_dir": str(cache_dir.resolve())}
    return [
        NotebookJob(NOTEBOOKS / "generation.md", generated / f"gen_{number:02d}.ipynb",
                    {**common, "generation": number}, GENERATION_CELL_LIMIT_S,
                    hidden_tags=(OFFSPRING_TAG,) if number == 1 else (ANCESTOR_TAG,))
        for number in range(1, config.generations + 1)
    ]


def study_jobs(
    plan: StudyPlan, run_dir: Path, explorer: dict[str, Any], generated: Path, pedestrians_dir: Path | None
) -> list[NotebookJob]:
    """The chapters after the generations; ``explorer`` is the alpha explorer's sweep (``sweep_dirs`` or a
    ``sweep_table``)."""
    config, run = plan.config, str(run_dir.resolve())
    cache_dir = str(plan.cache_dir.resolve())
    pedestrians = str(pedestrians_dir.resolve()) if pedestrians_dir else None
    return [
        NotebookJob(NOTEBOOKS / "intro.md", generated / "intro.ipynb", {"run_dir": run},
                    hidden_tags=(INJECTED_PARAMETERS,)),
        NotebookJob(NOTEBOOKS / "pedestrians.md", generated / "pedestrians.ipynb",
                    {"run_dir": pedestrians, "cache_dir": cache_dir},
                    hidden_tags=(INJECTED_PARAMETERS, WITHOUT_RUN_TAG if pedestrians else WITH_RUN_TAG)),
        NotebookJob(NOTEBOOKS / "compare.md", generated / "compare.ipynb",
                    {"runs_dir": str(plan.runs_dir.resolve()), "comparison": plan.comparison}),
        NotebookJob(NOTEBOOKS / "dna.md", generated / "dna.ipynb",
                    {"run_dir": run, "alpha_synapse": config.alpha_synapse, "alpha_cluster": config.alpha_cluster,
                     "environment": config.environment}),
        NotebookJob(NOTEBOOKS / "results.md", generated / "results.ipynb", {"run_dir": run},
                    hidden_tags=(INJECTED_PARAMETERS,)),
        NotebookJob(NOTEBOOKS / "alpha_explorer.md", generated / "alpha_explorer.ipynb",
                    {"sweep_dirs": [], "sweep_table": None, **explorer}),
    ]


BOOK_BUILD_LIMIT_S = 1200  # the default book builds in about a minute here: twenty is a stuck Sphinx


def build_book(book_dir: Path, config_file: Path = REPO_ROOT / "_config.yml") -> Path:
    """Build the book from the executed notebooks (warnings are errors) and check it loads nothing remote."""
    if not vendor_is_complete(vendor_dir(book_dir)):
        raise EvosynthError(
            f"the book's JavaScript is missing in {vendor_dir(book_dir)}; run `evosynth vendor-js` (set-up, uses the "
            "npm registry once) or `make study`, which does it"
        )
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    subprocess.run([str(jupyter_book), "clean", str(book_dir)], check=True, capture_output=True,
                   timeout=BOOK_BUILD_LIMIT_S)
    try:
        build = subprocess.run(
            [str(jupyter_book), "build", str(book_dir), "--config", str(config_file), "--path-output", str(book_dir),
             "-W", "--keep-going"],
            capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=BOOK_BUILD_LIMIT_S,
        )
    except subprocess.TimeoutExpired as error:
        output = error.stdout or b""
        tail = output.decode(errors="replace") if isinstance(output, bytes) else output
        raise EvosynthError(f"the book did not build within {BOOK_BUILD_LIMIT_S} s (jupyter-book was stopped); "
                            f"its last output:\n{tail[-4000:]}") from error
    if build.returncode != 0:
        log = f"{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
        raise EvosynthError(f"the book did not build (warnings are errors):\n{log}")
    html = book_dir / "_build" / "html"
    remote = find_network_references(html)
    if remote:
        raise EvosynthError("the built book loads resources from the network:\n" + "\n".join(remote))
    return html / "index.html"


# The study's Figure 2 times eager PyTorch, onnxruntime, OpenVINO and, on a GPU, CUDA and TensorRT; torch.compile
# would add minutes of compilation (a graph per generation and input shape; `evosynth bench` times it too).
STUDY_BACKENDS = tuple(name for name in BACKENDS if not name.startswith("torch-compile"))


@dataclass(frozen=True)
class StudyPlan:
    """What `evosynth study` does: the main run, the alpha sweep around it, and where the book goes."""

    config: RunConfig
    runs_dir: Path
    cache_dir: Path
    book_dir: Path
    sweep_alpha_clusters: tuple[float, ...] = DEFAULT_ALPHA_CLUSTERS
    sweep_file: Path | None = None  # a grid (sweeps/default.toml) run on Ray for the alpha explorer, instead
    bench_rounds: int = DEFAULT_ROUNDS
    bench_backends: tuple[str, ...] = STUDY_BACKENDS
    pedestrians_root: Path | None = None  # a Penn-Fudan folder: the same evolution on real pedestrians
    comparison: str = "reduced"  # which `evosynth compare` plan the "How it compares" chapter runs


def default_pedestrians_root() -> Path | None:
    """Where `evosynth data download pennfudan` puts Penn-Fudan, if it is there: the study never downloads."""
    root = REPO_ROOT / PENNFUDAN.destination
    return root if root.is_dir() else None


def pedestrians_config(config: RunConfig, root: Path) -> RunConfig:
    """The main run's evolution (environment, alphas, precision, seed, length) on Penn-Fudan, with its preset."""
    return replace(config, preset=default_preset("pennfudan"), data="pennfudan", data_root=str(root), category=None)


def alpha_explorer_sweep(plan: StudyPlan, grid: SweepGrid | None) -> dict[str, Any]:
    """Run the alpha explorer's sweep and say where its results are: the study's own alpha_cluster sweep (run
    here), or ``grid`` (``plan.sweep_file``'s) run on a local Ray instance, read through its results table."""
    if grid is None:
        folders = run_sweep(sweep_configs(plan.config, plan.sweep_alpha_clusters), plan.runs_dir, plan.cache_dir)
        return {"sweep_dirs": [str(folder.resolve()) for folder in folders]}
    outcome = run_grid(grid, plan.runs_dir, plan.cache_dir)
    outcome.raise_for_failures()
    return {"sweep_table": str(outcome.table.resolve())}


STAGE_TIMES = "study-times.json"  # in the runs folder: the seconds each stage of the last `evosynth study` took


@dataclass
class StageClock:
    """Says what the study is computing, stage by stage, and how long each stage took; the times go to
    ``STAGE_TIMES`` with the machine (a rerun that resumes takes less: the file says what this call did)."""

    path: Path
    seconds: dict[str, float] = field(default_factory=dict)
    machine: str = field(default_factory=lambda: machine_summary(describe_machine()))  # read once, not per stage

    @contextlib.contextmanager
    def stage(self, name: str, what: str) -> Iterator[None]:
        tqdm.write(f"[study] {name}: {what}")
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 1)
        tqdm.write(f"[study] {name}: done in {self.seconds[name]:.0f} s")
        write_json(self.path, {"machine": self.machine, "seconds": self.seconds,
                               "total_seconds": round(sum(self.seconds.values()), 1)})


def run_study(plan: StudyPlan) -> Path:
    """Compute every run the study shows, measure speed, the last generation's capacity and the task's capacity
    curve, run the comparison's lineages, execute the pages, build the book.

    Every run, on every data set, is computed one way: by ``evolve`` or ``run_comparison`` (resumable, generation
    by generation), before any page runs. The pages only read what the runs hold, so a page's execution never
    trains.
    """
    grid = load_sweep(plan.sweep_file) if plan.sweep_file else None  # a bad sweep file fails before any work
    run_dir = plan.runs_dir / plan.config.name
    generated = plan.book_dir / "generated"
    plan.runs_dir.mkdir(parents=True, exist_ok=True)
    clock = StageClock(plan.runs_dir / STAGE_TIMES)
    with clock.stage("evolution", f"{plan.config.generations} generations of {plan.config.name}"):
        evolve(plan.config, run_dir, plan.cache_dir)
    with clock.stage("alpha sweep", "the alpha explorer's runs" + (f" ({plan.sweep_file}, on Ray)" if grid else
                                                                   f", alpha_cluster {plan.sweep_alpha_clusters}")):
        explorer = alpha_explorer_sweep(plan, grid)
    with clock.stage("speed", f"frames per second of every generation, {plan.bench_rounds} rounds"):
        if not bench_is_current(run_dir):  # a rerun keeps the measurement; `evosynth bench` redoes it
            benchmark_run(run_dir, backends=plan.bench_backends, rounds=plan.bench_rounds)
    with clock.stage("final training", f"generation {plan.config.generations}'s widths trained to convergence, "
                                       "trained on and from scratch"):
        measure_capacity(run_dir, [plan.config.generations], plan.cache_dir)
    with clock.stage("capacity curve", f"dense networks of the ancestor's shape at widths x{STUDY_SCALES}"):
        measure_width_curve(plan.config, STUDY_SCALES, (plan.config.seed,), plan.runs_dir, plan.cache_dir)
    comparison = get_comparison(plan.comparison)
    with clock.stage("comparison", f"the {comparison.name!r} comparison's {len(comparison.lineages())} lineages, "
                                   f"{comparison.generations} generations"):
        run_comparison(comparison, plan.runs_dir, plan.cache_dir)
    pedestrians_dir = None
    if plan.pedestrians_root is not None:
        pedestrians = pedestrians_config(plan.config, plan.pedestrians_root)
        pedestrians_dir = plan.runs_dir / pedestrians.name
        with clock.stage("pedestrians", f"the same evolution on Penn-Fudan ({plan.pedestrians_root})"):
            evolve(pedestrians, pedestrians_dir, plan.cache_dir)
    with clock.stage("generation pages", f"{plan.config.generations} pages, read from the run"):
        execute_all(generation_jobs(plan.config, run_dir, plan.cache_dir, generated), skip_done=True)
    with clock.stage("chapter pages", "intro, DNA, results, alpha explorer, comparison, pedestrians"):
        execute_all(study_jobs(plan, run_dir, explorer, generated, pedestrians_dir))
    with clock.stage("book", "Jupyter Book, offline"):
        return build_book(plan.book_dir)
