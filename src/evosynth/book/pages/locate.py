"""Where a page finds what it shows.

A page's parameter cell names only what comes from outside: a run folder, a generation, the data cache, a sweep.
None means the library's default, computed here from ``RunConfig`` and ``paths`` (so a new default is written
once); a relative path is the checkout's, where the batch and JupyterLab run the pages. Everything else a page
shows of a run, its settings included, is read from the run folder (its config.json).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evosynth.paths import CACHE_DIR, RUNS_DIR, in_checkout
from evosynth.storage.runs import CONFIG
from evosynth.study.config import RunConfig
from evosynth.study.evolution import stored_run_config
from evosynth.study.sweep import sweep_configs


def runs_folder(runs_dir: str | Path | None = None) -> Path:
    return in_checkout(RUNS_DIR if runs_dir is None else runs_dir)


def default_run_dir() -> Path:
    """The library's default run (``RunConfig()``), in the checkout's runs folder."""
    return runs_folder() / RunConfig().name


def run_folder(run_dir: str | Path | None) -> Path:
    return default_run_dir() if run_dir is None else in_checkout(run_dir)


def cache_folder(cache_dir: str | Path | None) -> Path:
    return in_checkout(CACHE_DIR if cache_dir is None else cache_dir)


def run_config(run: Path) -> RunConfig:
    """The run's settings, from its config.json; the default run before anything computed it has ``RunConfig()``'s
    (a generation page computes it)."""
    if run == default_run_dir() and not (run / CONFIG).is_file():
        return RunConfig()
    return stored_run_config(run)


def sweep_folders(sweep_dirs: Sequence[str | Path] | None) -> list[Path]:
    """The alpha explorer's runs: the folders named, or the library's default sweep around the default run."""
    if sweep_dirs is None:
        return [runs_folder() / config.name for config in sweep_configs(RunConfig())]
    return [in_checkout(folder) for folder in sweep_dirs]


OWN_NETWORK_RUN = "own-network-resnet"  # the "Evolve your own network" page's run folder, in the runs folder


def own_network_folder(run_dir: str | Path | None) -> Path:
    return runs_folder() / OWN_NETWORK_RUN if run_dir is None else in_checkout(run_dir)
