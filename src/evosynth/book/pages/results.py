"""The results page (``notebooks/results.md``): the run's measured speed-up and its changes from generation 1 to
the last, next to the paper's own reported numbers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from evosynth.deploy.benchmark import BENCH_FILE, bench_table
from evosynth.files import read_json

# The paper's own reported numbers (Parse-27k, Jetson TX1): quoted, never computed here.
PAPER_GENERATIONS = 13
PAPER_SYNAPSE_REDUCTION = 10.0  # "a ten-fold decrease in synapses"
PAPER_FPS = (7.0, 37.0)  # inference speed of generation 1 and generation 13, frames per second
PAPER_PRECISION_CHANGE_POINTS = 2.0  # "increase of ~2% in precision"
PAPER_RECALL_CHANGE_POINTS = -2.0  # "decrease ~2% in recall"


def measured_speed(run_dir: Path) -> tuple[pd.DataFrame, str] | None:
    """A run's ``bench.json`` as ``bench_table`` rows, with the machine that measured it (its CPU and the threads
    used); None where the run was not benchmarked."""
    path = Path(run_dir) / BENCH_FILE
    if not path.is_file():
        return None
    bench = read_json(path)
    return bench_table(bench), f"{bench['machine']['cpu']}, {bench['settings']['threads']} threads"


def best_speedup(bench_rows: pd.DataFrame, batch_size: int) -> pd.Series:
    """The last generation's row of the backend with the largest measured speed-up over generation 1."""
    rows = bench_rows[bench_rows["batch_size"] == batch_size]
    last = rows[rows["generation"] == rows["generation"].max()]
    return last.loc[last["speedup_vs_gen1"].idxmax()]


def paper_comparison(table: pd.DataFrame, measured_speedup: float | None = None) -> pd.DataFrame:
    """The paper's reported changes from generation 1 to its last, next to this run's (from ``generations_table``).

    The paper measured inference speed (fps on a Jetson TX1, TensorRT FP16); ``measured_speedup`` is this run's
    best batch-1 speed-up from ``bench.json`` (None when the run was not benchmarked). Rows hold None on the side
    that did not measure a quantity.
    """
    first, last = table.iloc[0], table.iloc[-1]
    rows = [
        ("generations", "count", PAPER_GENERATIONS, int(last["generation"])),
        ("synapse reduction, generation 1 ÷ last", "times", PAPER_SYNAPSE_REDUCTION, float(last["synapse_reduction"])),
        ("inference speed-up (measured, batch 1), last ÷ generation 1", "times", PAPER_FPS[1] / PAPER_FPS[0],
         measured_speedup),
        ("MAC reduction (multiply-accumulates per image), generation 1 ÷ last", "times", None,
         float(last["mac_reduction"])),
        ("precision change, last − generation 1", "points", PAPER_PRECISION_CHANGE_POINTS,
         100 * float(last["precision_score"] - first["precision_score"])),
        ("recall change, last − generation 1", "points", PAPER_RECALL_CHANGE_POINTS,
         100 * float(last["recall"] - first["recall"])),
    ]
    return pd.DataFrame(rows, columns=["quantity", "unit", "paper (reported)", "this run"], dtype=object)
