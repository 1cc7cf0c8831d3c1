"""The alpha sweep behind the alpha explorer: ordinary run folders that differ only in their alphas.

All points share the run's ancestor (generation 1 does not depend on the environment), so a point costs only its
offspring generations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from evosynth.study.config import RunConfig
from evosynth.study.evolution import evolve, load_run
from evosynth.study.report import generations_table

DEFAULT_ALPHA_CLUSTERS: tuple[float, ...] = (0.85, 0.915, 0.97)


def sweep_configs(base: RunConfig, alpha_clusters: Sequence[float] = DEFAULT_ALPHA_CLUSTERS) -> list[RunConfig]:
    """The base run and its variants in alpha_cluster, ordered by alpha (the base run is always a point)."""
    return [replace(base, alpha_cluster=alpha) for alpha in sorted({*alpha_clusters, base.alpha_cluster})]


def run_sweep(configs: Sequence[RunConfig], root: Path, data_dir: Path) -> list[Path]:
    """Evolve every configuration into ``root/<run name>``; finished runs (the main run among them) are loaded."""
    folders = []
    for config in tqdm(configs, desc="alpha sweep", unit="run"):
        folder = root / config.name
        evolve(config, folder, data_dir)
        folders.append(folder)
    return folders


def sweep_results(folders: Sequence[Path]) -> pd.DataFrame:
    """One row per (run, generation): the alphas, the environment, efficiency and accuracy."""
    frames = []
    for folder in folders:
        config, generations = load_run(folder)
        table = generations_table(generations)
        table.insert(0, "alpha_synapse", config.alpha_synapse)
        table.insert(1, "alpha_cluster", config.alpha_cluster)
        table.insert(2, "environment", config.environment)
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
