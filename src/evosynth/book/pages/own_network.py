"""The "Evolve your own network" page (``notebooks/own_network.md``): any network's generations as a table."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from evosynth.storage.runs import Generation


def generations_frame(generations: Sequence[Generation]) -> pd.DataFrame:
    """One row per generation: synapses, multiply-accumulates, accuracy, and the reductions from generation 1."""
    frame = pd.DataFrame([{"generation": g.number, "synapses": g.metrics["synapses"], "macs": g.metrics["macs"],
                           "accuracy": g.metrics["accuracy"]} for g in generations])
    first = frame.iloc[0]
    return frame.assign(synapse_reduction=first["synapses"] / frame["synapses"],
                        mac_reduction=first["macs"] / frame["macs"])
