"""``bench.json``: what ``benchmark.benchmark_run`` measured, its schema, and the tables read from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from evosynth.errors import EvosynthError
from evosynth.storage.runs import read_json

BENCH_FILE = "bench.json"
# 2: workloads (frame, thumbnail, thumbnail batch); 3: the ceiling's dense networks on the frame; 4: the ceiling's
# widths in the run's channel multiple. bench.json of another schema is refused.
SCHEMA_VERSION = 4


class BenchFormatError(EvosynthError):
    """A bench.json this version cannot read: measure again."""


def read_bench(path: Path) -> dict[str, Any]:
    """A bench.json of this schema; another is refused with what to do (measure again)."""
    bench = read_json(path)
    if bench.get("schema") != SCHEMA_VERSION:
        raise BenchFormatError(f"{path} is of bench schema {bench.get('schema')!r}; this evosynth reads schema "
                               f"{SCHEMA_VERSION} only: measure again with `evosynth bench {path.parent}`")
    return bench


def bench_is_current(run_dir: Path) -> bool:
    """The run has a bench.json of this schema."""
    path = Path(run_dir) / BENCH_FILE
    return path.is_file() and read_json(path).get("schema") == SCHEMA_VERSION


def measured_table(run_dir: Path) -> pd.DataFrame | None:
    """``bench_table`` of a run folder's bench.json, or None where the run was not benchmarked."""
    path = Path(run_dir) / BENCH_FILE
    return bench_table(read_bench(path)) if path.is_file() else None


BENCH_COLUMNS = ["generation", "backend", "workload", "batch_size", "height", "width", "macs", "median_ms", "q1_ms",
                 "q3_ms", "throughput_fps", "speedup_vs_gen1", "mac_reduction", "speedup_per_mac_reduction"]


def bench_table(bench: dict[str, Any]) -> pd.DataFrame:
    """One row per (generation, backend, workload): what the CLI prints and the results notebook plots."""
    return pd.DataFrame(bench["results"], columns=BENCH_COLUMNS).sort_values(["workload", "backend", "generation"])


CEILING_COLUMNS = ["network", "widths", "backend", "macs", "median_ms", "q1_ms", "q3_ms", "throughput_fps",
                   "speedup_vs_gen1", "mac_reduction"]


def ceiling_table(bench: dict[str, Any]) -> pd.DataFrame:
    """One row per (dense network of the ancestor's structure, backend), timed on the frame beside the generations
    (empty where the bench timed no ceiling)."""
    return pd.DataFrame(bench["ceiling"], columns=CEILING_COLUMNS).sort_values(["backend", "macs"])


def format_bench_table(bench: dict[str, Any]) -> str:
    hidden = ["q1_ms", "q3_ms", "batch_size", "height", "width", "macs"]
    shown = bench_table(bench).drop(columns=hidden).rename(columns={
        "generation": "gen", "median_ms": "median ms", "throughput_fps": "img/s",
        "speedup_vs_gen1": "speed-up", "mac_reduction": "MAC ÷", "speedup_per_mac_reduction": "speed-up / MAC ÷"})
    formats = {"median ms": "{:.2f}".format, "img/s": "{:.0f}".format, "speed-up": "{:.2f}x".format,
               "MAC ÷": "{:.2f}x".format, "speed-up / MAC ÷": "{:.2f}".format}
    return shown.to_string(index=False, formatters=formats)  # type: ignore[arg-type]
