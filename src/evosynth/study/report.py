"""Tables of a run's generations, for the terminal and for notebooks."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from evosynth.storage.runs import Generation

COLUMNS = {
    "generation": "gen",
    "synapses": "synapses",
    "clusters": "clusters",
    "macs": "MACs",
    "parameters": "params",
    "bytes_fp16": "FP16 bytes",
    "precision_score": "precision",
    "recall": "recall",
    "ap50": "AP50",
    "op_precision": "precision (op)",
    "op_recall": "recall (op)",
    "op_threshold": "threshold (op)",
    "epochs": "epochs",
    "train_seconds": "train s",
}


OPERATING_POINT_COLUMNS = {"op_precision": "precision", "op_recall": "recall", "op_threshold": "threshold"}


def _row(metrics: dict) -> dict:
    """A generation's metrics as one flat row: its validated operating point as the ``op_`` columns."""
    point = metrics["operating_point"]
    return {key: point[OPERATING_POINT_COLUMNS[key]] if key in OPERATING_POINT_COLUMNS else metrics[key]
            for key in COLUMNS}


def generations_table(generations: Sequence[Generation]) -> pd.DataFrame:
    """One row per generation with the metrics of the paper's figures, plus reductions against generation 1.

    ``precision_score`` and ``recall`` are read at the fixed score threshold; ``op_precision`` and ``op_recall``
    at the generation's own threshold chosen on the validation split (``op_threshold``, ``metrics.OPERATING_RULE``).
    """
    table = pd.DataFrame([_row(g.metrics) for g in generations])
    if len(table):
        first = table.iloc[0]
        table["synapse_reduction"] = first["synapses"] / table["synapses"]
        table["mac_reduction"] = first["macs"] / table["macs"]
    return table


def format_table(table: pd.DataFrame) -> str:
    shown = table.rename(columns={**COLUMNS, "synapse_reduction": "syn ÷", "mac_reduction": "MAC ÷"})
    formats = {
        "precision": "{:.3f}".format, "recall": "{:.3f}".format, "AP50": "{:.3f}".format,
        "precision (op)": "{:.3f}".format, "recall (op)": "{:.3f}".format, "threshold (op)": "{:.2f}".format,
        "train s": "{:.0f}".format, "syn ÷": "{:.1f}x".format, "MAC ÷": "{:.1f}x".format,
        "MACs": lambda v: f"{v / 1e6:.2f}M",
    }
    return shown.to_string(index=False, formatters=formats)
