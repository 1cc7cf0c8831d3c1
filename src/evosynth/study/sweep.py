"""Sweeps: ordinary run folders that differ in their alphas (the alpha explorer's), or in any axis of a grid.

``run_sweep`` evolves the study's small alpha sweep in this process; ``evosynth sweep`` runs a grid file on Ray
(``evosynth.study.distributed``). Either way every point is ``<runs_dir>/<run name>``, so the two share runs, and
points that differ only in their environment share one ancestor (generation 1 does not depend on it), so such a
point costs only its offspring generations. ``sweep_table`` is a grid's results, one row per run, as CSV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from evosynth.deploy.bench_record import measured_table
from evosynth.errors import CheckpointError
from evosynth.files import atomic_write
from evosynth.storage.runs import RunFolder
from evosynth.study.config import RunConfig, run_settings
from evosynth.study.evolution import evolve, load_run
from evosynth.study.report import generations_table

# The study's own sweep beside the base run (which every sweep holds): a stronger environment. Why not also
# alpha_cluster = 1: benchmarks/README.md, "The study's own alpha sweep".
DEFAULT_ALPHA_CLUSTERS: tuple[float, ...] = (0.72,)

# What tells the runs of a sweep apart: the run folder's name and the run settings but its length.
IDENTITY_COLUMNS = ("run", *(s.name for s in run_settings() if s.identity != "never"))
SPEEDUP_PREFIX = "speedup_"  # a sweep table's measured speed-up columns: speedup_<backend>_<workload>
TABLES_FOLDER = "sweeps"  # <runs_dir>/sweeps/<sweep name>.csv, beside the runs the table describes


def sweep_configs(base: RunConfig, alpha_clusters: Sequence[float] = DEFAULT_ALPHA_CLUSTERS) -> list[RunConfig]:
    """The base run and its variants in alpha_cluster, ordered by alpha (the base run is always a point)."""
    return [replace(base, alpha_cluster=alpha) for alpha in sorted({*alpha_clusters, base.alpha_cluster})]


def run_sweep(configs: Sequence[RunConfig], root: Path, cache_dir: Path) -> list[Path]:
    """Evolve every configuration into ``root/<run name>``; finished runs (the main run among them) are loaded."""
    folders = []
    for config in tqdm(configs, desc="alpha sweep", unit="run"):
        folder = root / config.name
        evolve(config, folder, cache_dir)
        folders.append(folder)
    return folders


def sweep_results(folders: Sequence[Path]) -> pd.DataFrame:
    """One row per (run, generation): the run's identity (``IDENTITY_COLUMNS``), efficiency and accuracy."""
    frames = []
    for folder in folders:
        config, generations = load_run(folder)
        table = generations_table(generations)
        identity = {"run": Path(folder).name, **{key: getattr(config, key) for key in IDENTITY_COLUMNS[1:]}}
        frames.append(table.assign(**identity)[[*IDENTITY_COLUMNS, *table.columns]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def run_is_complete(config: RunConfig, folder: Path) -> bool:
    """Whether ``folder`` holds this configuration's run up to its last generation.

    Two small reads and no weights, so that a restarted sweep skips its finished runs without submitting them;
    anything doubtful (a damaged config.json, another configuration) is "not complete", and ``evolve`` then
    resumes it or names the problem.
    """
    run = RunFolder(folder)
    if not run.is_finished(config.generations):
        return False
    try:
        return not run.identity_differences(config.identity())
    except CheckpointError:
        return False


def sweep_table(configs: Sequence[RunConfig], runs_dir: Path) -> pd.DataFrame:
    """One row per complete run of a grid, in grid order: its identity and what its last generation (the
    configuration's, even where the folder holds a longer run) achieved, with the measured speed-ups of that
    generation where the run has a bench.json (``evosynth bench``). Incomplete runs have no row."""
    rows = []
    for config in configs:
        folder = runs_dir / config.name
        if run_is_complete(config, folder):
            results = sweep_results([folder])
            last = results[results["generation"] == config.generations].iloc[0].to_dict()
            rows.append({**last, **measured_speedups(folder, config.generations)})
    return pd.DataFrame(rows)


def measured_speedups(folder: Path, generation: int) -> dict[str, Any]:
    """``speedup_vs_gen1`` of one generation for every backend and workload that bench.json measured."""
    rows = measured_table(folder)
    if rows is None:
        return {}
    cells = rows[rows["generation"] == generation].to_dict("records")
    return {f"{SPEEDUP_PREFIX}{cell['backend']}_{cell['workload']}": cell["speedup_vs_gen1"] for cell in cells}


def sweep_table_path(runs_dir: Path, name: str) -> Path:
    return runs_dir / TABLES_FOLDER / f"{name}.csv"


def write_sweep_table(table: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))


def read_sweep_table(path: Path) -> pd.DataFrame:
    """A sweep table written by ``evosynth sweep``; its runs are ``<runs_dir>/<run>`` (``table_runs``)."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path} is not a sweep table; `evosynth sweep SWEEP_FILE` writes "
                              f"<runs_dir>/{TABLES_FOLDER}/<sweep name>.csv")
    return pd.read_csv(path)


def table_runs(path: Path, table: pd.DataFrame) -> list[Path]:
    """The run folders of a sweep table's rows: the table lives in ``<runs_dir>/sweeps/``."""
    runs_dir = Path(path).resolve().parent.parent
    return [runs_dir / run for run in table["run"]]


def explorer_slice(table: pd.DataFrame, free: Sequence[str] = ("alpha_cluster",)) -> pd.DataFrame:
    """The rows the alpha explorer compares: those with the table's first value of every axis but the ``free``
    ones (seed, environment, alpha_synapse, data set, ...), because its charts tell runs apart by the free axes
    alone: one run per alpha_cluster, or with ``free`` = alpha_cluster and seed, every seed of each."""
    others = [column for column in IDENTITY_COLUMNS if column not in ("run", *free)]
    axes = table[others]
    first = axes.iloc[0]
    same = axes.eq(first) | (axes.isna() & first.isna())  # a missing value (digits: no data_root) matches itself
    return table[same.all(axis=1)]


def _sliced_runs(sweep_table: str, free: Sequence[str]) -> list[Path]:
    """The run folders of a sweep table's ``explorer_slice`` with these free axes."""
    return table_runs(Path(sweep_table), explorer_slice(read_sweep_table(Path(sweep_table)), free))


def seed_runs(sweep_table: str) -> list[Path]:
    """The runs of a sweep table that differ from the explorer's only in alpha_cluster and seed."""
    return _sliced_runs(sweep_table, ("alpha_cluster", "seed"))


def explorer_runs(sweep_dirs: Sequence[Path], sweep_table: str | None) -> list[Path]:
    """The alpha explorer's runs: those of a sweep table's ``explorer_slice`` if one is given, else ``sweep_dirs``."""
    if sweep_table is None:
        return list(sweep_dirs)
    return _sliced_runs(sweep_table, ("alpha_cluster",))


def varying_axes(table: pd.DataFrame) -> list[str]:
    """The identity columns (but the run's name) that take more than one value in a sweep table."""
    return [column for column in IDENTITY_COLUMNS[1:] if table[column].nunique(dropna=False) > 1]


SPREAD_METRICS = ("synapse_reduction", "mac_reduction", "precision_score", "recall", "ap50")


def seed_spread(table: pd.DataFrame) -> pd.DataFrame:
    """How much the last generation depends on the seed: mean and standard deviation over seeds of every other
    grid point of a sweep table (the axes that vary in it), and how many seeds each has."""
    varying = [axis for axis in varying_axes(table) if axis != "seed"] or ["alpha_cluster"]
    grouped = table.groupby(varying, dropna=False)
    spread = grouped[list(SPREAD_METRICS)].agg(["mean", "std"])
    spread.columns = [f"{metric} {statistic}" for metric, statistic in spread.columns]
    return spread.assign(seeds=grouped["seed"].nunique()).reset_index()
