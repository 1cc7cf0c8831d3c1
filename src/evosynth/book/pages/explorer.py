"""The alpha explorer page (``notebooks/alpha_explorer.md``): where each run of an alpha_cluster sweep ends."""

from __future__ import annotations

import pandas as pd


def final_generations(sweep: pd.DataFrame) -> pd.DataFrame:
    """The last generation of every run of a sweep (``sweep_results``), sorted by alpha_cluster."""
    keys = ["environment", "alpha_synapse", "alpha_cluster"]
    last = sweep.loc[sweep.groupby(keys)["generation"].idxmax()]
    return last.sort_values(["alpha_cluster", "alpha_synapse"]).reset_index(drop=True)
