"""The study's book: ``run_study`` has the study computed (``study.plan``), then Papermill executes the generation
notebook once per generation and the other notebooks into the book's source tree, and Jupyter Book renders them.

A rerun of the batch skips the generation notebooks that finished; the runs resume generation by generation.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from evosynth.book.build import build_book
from evosynth.book.notebooks import GENERATION_CELL_LIMIT_S, NotebookJob, execute_all
from evosynth.book.pages.locate import OWN_NETWORK_RUN
from evosynth.paths import NOTEBOOKS, SWEEPS_DIR
from evosynth.study.plan import STAGE_TIMES, StageClock, StudyPlan, compute_study

SHOWN_SWEEP = "default.toml"  # the sweep file the scaling page shows, from sweeps/
# Generation pages executed at once: such a page's time is mostly its kernel's start and imports, one core each; two
# at a time took the study's 13 from 104 to 67 s, same outputs (2-core AMD EPYC, avx512_bf16). The chapters run one
# at a time: their long cells compute with torch on every core, and two of them at once took 111 s against 66 s.
GENERATION_PAGE_WORKERS = 2

# The generation notebook's cells that only the ancestor's page shows, and those that only an offspring's shows
ANCESTOR_TAG, OFFSPRING_TAG = "ancestor", "offspring"
# The pedestrians notebook's cells that need its comparison computed in this build, and the one that says it was not
WITH_RUN_TAG, WITHOUT_RUN_TAG = "with-run", "without-run"


def generation_jobs(run_dir: Path, generations: int, cache_dir: Path, generated: Path) -> list[NotebookJob]:
    """One job per generation of the run; the page reads the run's settings from its folder."""
    common = {"run_dir": str(run_dir.resolve()), "cache_dir": str(cache_dir.resolve())}
    return [
        NotebookJob(NOTEBOOKS / "generation.md", generated / f"gen_{number:02d}.ipynb",
                    {**common, "generation": number}, GENERATION_CELL_LIMIT_S,
                    hidden_tags=(OFFSPRING_TAG,) if number == 1 else (ANCESTOR_TAG,))
        for number in range(1, generations + 1)
    ]


def study_jobs(
    plan: StudyPlan, run_dir: Path, explorer: dict[str, Any], generated: Path, pedestrians: bool
) -> list[NotebookJob]:
    """The chapters after the generations; ``explorer`` is the alpha explorer's sweep (``sweep_dirs`` or a
    ``sweep_table``); ``pedestrians``: whether the study computed the pedestrians comparison (else its page shows
    the stored one)."""
    run = {"run_dir": str(run_dir.resolve())}
    return [
        NotebookJob(NOTEBOOKS / "intro.md", generated / "intro.ipynb", run),
        NotebookJob(NOTEBOOKS / "pedestrians.md", generated / "pedestrians.ipynb",
                    {"runs_dir": str(plan.runs_dir.resolve()), "cache_dir": str(plan.cache_dir.resolve())},
                    hidden_tags=(WITHOUT_RUN_TAG if pedestrians else WITH_RUN_TAG,)),
        NotebookJob(NOTEBOOKS / "compare.md", generated / "compare.ipynb",
                    {"runs_dir": str(plan.runs_dir.resolve()), "comparison": plan.comparison}),
        NotebookJob(NOTEBOOKS / "dna.md", generated / "dna.ipynb", run),
        NotebookJob(NOTEBOOKS / "results.md", generated / "results.ipynb",
                    {**run, "cache_dir": str(plan.cache_dir.resolve())}),
        NotebookJob(NOTEBOOKS / "bounds.md", generated / "bounds.ipynb", run),
        NotebookJob(NOTEBOOKS / "alpha_explorer.md", generated / "alpha_explorer.ipynb",
                    {"sweep_dirs": None, "sweep_table": None, **explorer}),
        # the page trains (it shows the code that does): as long as a generation page may take
        NotebookJob(NOTEBOOKS / "own_network.md", generated / "own_network.ipynb",
                    {"run_dir": str((plan.runs_dir / OWN_NETWORK_RUN).resolve())}, GENERATION_CELL_LIMIT_S),
    ]


def run_study(plan: StudyPlan) -> Path:
    """Compute the study (every run, on every data set, before any page runs: a page's execution never trains),
    execute the pages, build the book; returns the book's index page."""
    generated = plan.book_dir / "generated"
    clock = StageClock(plan.runs_dir / STAGE_TIMES)
    runs = compute_study(plan, clock)
    with clock.stage("generation pages", f"{plan.config.generations} pages, read from the run"):
        execute_all(generation_jobs(runs.run_dir, plan.config.generations, plan.cache_dir, generated),
                    skip_done=True, workers=GENERATION_PAGE_WORKERS)
    with clock.stage("chapter pages", "intro, DNA, results, what bounds it, alpha explorer, comparison, "
                                      "pedestrians, your own network (which trains its five generations)"):
        execute_all(study_jobs(plan, runs.run_dir, runs.explorer, generated, runs.pedestrians))
    with clock.stage("book", "Jupyter Book, offline"):
        shutil.copy2(SWEEPS_DIR / SHOWN_SWEEP, generated / SHOWN_SWEEP)  # the scaling page includes it as it is
        return build_book(plan.book_dir)
