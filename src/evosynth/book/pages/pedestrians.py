"""The Penn-Fudan page (``notebooks/pedestrians.md``): what the run achieved from its first to its last
generation, as values for the page's prose."""

from __future__ import annotations

from typing import Any

import pandas as pd

QUALITY = {"precision_score": "precision", "recall": "recall", "ap50": "ap50"}  # table column: key prefix


def run_summary(table: pd.DataFrame, run_name: str) -> dict[str, Any]:
    """The numbers of the page's summary paragraph (its glue keys), from a run's
    ``report.generations_table``: the last generation's synapses and MACs per image (in millions) with their
    reductions against generation 1, and precision, recall and AP50 at the first and the last generation with
    the change in points."""
    first, last = table.iloc[0], table.iloc[-1]
    values: dict[str, Any] = {
        "run_name": run_name,
        "generations": len(table),
        "last_generation": int(last["generation"]),
        "last_synapses": int(last["synapses"]),
        "synapse_reduction": float(last["synapse_reduction"]),
        "last_mmacs": float(last["macs"]) / 1e6,
        "mac_reduction": float(last["mac_reduction"]),
    }
    for column, prefix in QUALITY.items():
        values[f"{prefix}_first"] = float(first[column])
        values[f"{prefix}_last"] = float(last[column])
        values[f"{prefix}_change"] = 100 * float(last[column] - first[column])
    return values
