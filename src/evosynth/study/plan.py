"""What `evosynth study` computes, stage by stage, before any page runs: the main run, the alpha explorer's sweep,
speed, the final training, the capacity curve, the comparison and, where the data is here, the pedestrians comparison.

Every run is computed one way, by ``evolve`` or ``run_comparison`` (resumable, generation by generation), so the
pages only read what the runs hold and a page's execution never trains. Each stage says what it computes and
how long it took (``StageClock``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from evosynth.deploy.backends import STUDY_BACKENDS
from evosynth.deploy.bench_record import bench_is_current
from evosynth.deploy.benchmark import DEFAULT_ROUNDS, benchmark_run
from evosynth.deploy.machine import describe_machine, machine_summary
from evosynth.files import write_json
from evosynth.paths import REPO_ROOT
from evosynth.study.capacity import STUDY_SCALES, measure_capacity, measure_width_curve
from evosynth.study.compare import (
    DEFAULT_COMPARISON,
    FULL_COMPARISON,
    get_comparison,
    pedestrians_comparison,
    run_comparison,
)
from evosynth.study.config import RunConfig
from evosynth.study.distributed import run_grid
from evosynth.study.evolution import evolve
from evosynth.study.grid import SweepGrid, load_sweep
from evosynth.study.sweep import DEFAULT_ALPHA_CLUSTERS, run_sweep, sweep_configs
from evosynth.task.download import PENNFUDAN


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
    pedestrians_root: Path | None = None  # a Penn-Fudan folder: the pedestrians comparison on real pedestrians
    comparison: str = DEFAULT_COMPARISON  # which `evosynth compare` plan the "How it compares" chapter runs
    full: bool = False  # also compute the full comparison (FULL_COMPARISON), which the chapter then shows


def default_pedestrians_root() -> Path | None:
    """Where `evosynth data download pennfudan` puts Penn-Fudan, if it is there: the study never downloads."""
    root = REPO_ROOT / PENNFUDAN.destination
    return root if root.is_dir() else None


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


@dataclass(frozen=True)
class StudyRuns:
    """Where the computed study is: the main run, the alpha explorer's sweep (``sweep_dirs`` or a ``sweep_table``)
    and whether the pedestrians comparison was computed (in the runs folder, where its page reads it)."""

    run_dir: Path
    explorer: dict[str, Any]
    pedestrians: bool


def compute_study(plan: StudyPlan, clock: StageClock) -> StudyRuns:
    """Compute every run the study shows, measure speed, the last generation's capacity and the task's capacity
    curve, and run the comparison's lineages; each stage on ``clock``."""
    grid = load_sweep(plan.sweep_file) if plan.sweep_file else None  # a bad sweep file fails before any work
    run_dir = plan.runs_dir / plan.config.name
    plan.runs_dir.mkdir(parents=True, exist_ok=True)
    with clock.stage("evolution", f"{plan.config.generations} generations of {plan.config.name}"):
        evolve(plan.config, run_dir, plan.cache_dir)
    alphas = ", ".join(f"{config.alpha_cluster:g}" for config in sweep_configs(plan.config, plan.sweep_alpha_clusters))
    with clock.stage("alpha sweep", "the alpha explorer's runs" + (f" ({plan.sweep_file}, on Ray)" if grid else
                                                                   f", alpha_cluster {alphas}")):
        explorer = alpha_explorer_sweep(plan, grid)
    with clock.stage("speed", f"frames per second of every generation, {plan.bench_rounds} rounds"):
        if not bench_is_current(run_dir):  # a rerun keeps the measurement; `evosynth bench` redoes it
            benchmark_run(run_dir, backends=plan.bench_backends, rounds=plan.bench_rounds,
                          channel_multiple=plan.config.channel_multiple)
    with clock.stage("final training", f"generation {plan.config.generations}'s widths trained to convergence, "
                                       "trained on and from scratch"):
        measure_capacity(run_dir, [plan.config.generations], plan.cache_dir)
    with clock.stage("capacity curve", f"dense networks of the ancestor's shape at widths x{STUDY_SCALES}"):
        measure_width_curve(plan.config, STUDY_SCALES, (plan.config.seed,), plan.runs_dir, plan.cache_dir)
    comparison = get_comparison(plan.comparison)
    with clock.stage("comparison", f"the {comparison.name!r} comparison's {len(comparison.lineages())} lineages, "
                                   f"{comparison.generations} generations"):
        run_comparison(comparison, plan.runs_dir, plan.cache_dir)
    if plan.full:
        full = get_comparison(FULL_COMPARISON)
        with clock.stage("full comparison", f"{len(full.lineages())} lineages, {full.generations} generations, "
                                            "final training, timed on the frame"):
            run_comparison(full, plan.runs_dir, plan.cache_dir)
    if plan.pedestrians_root is not None:
        pedestrians = pedestrians_comparison(plan.pedestrians_root, plan.config.generations)
        with clock.stage("pedestrians", f"the evolution against L1 filter pruning on Penn-Fudan "
                                        f"({plan.pedestrians_root}), {len(pedestrians.lineages())} lineages"):
            run_comparison(pedestrians, plan.runs_dir, plan.cache_dir)
    return StudyRuns(run_dir, explorer, plan.pedestrians_root is not None)
