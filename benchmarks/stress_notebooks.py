"""Stress the headless execution of the notebooks that build live widgets (the DNA page, the alpha explorer).

Not a unit test (it takes minutes): it executes each notebook many times in a row with Papermill, half of the
executions while another process keeps every core busy, and counts the executions that hung (ran past the per-cell
limit), failed, or passed. Each execution gets its own per-cell limit here, so the script measures the hang even on
code that sets none. Usage, from the repository root:

    .venv/bin/python benchmarks/stress_notebooks.py --executions 30 --report /tmp/stress.json

It first computes (or reuses, under --work) a smoke run and its two-run alpha sweep for the notebooks to read.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import jupytext
import papermill
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from papermill.exceptions import PapermillExecutionError

from evosynth.paths import NOTEBOOKS

STALL_S = 30.0


def busy(stop_at: float) -> None:
    """Keep one core busy until ``stop_at`` (a load that competes with the kernel and the client)."""
    x = 0
    while time.time() < stop_at:
        x = (x * 1_103_515_245 + 12_345) % 2**31


def prepare(work: Path) -> dict[str, dict[str, object]]:
    """A smoke run and its alpha sweep; returns each stressed notebook's parameters."""
    from evosynth.study.config import RunConfig
    from evosynth.study.evolution import evolve
    from evosynth.study.sweep import run_sweep, sweep_configs

    config = RunConfig(preset="smoke", generations=2)
    cache, runs = work / "cache", work / "runs"
    folders = run_sweep(sweep_configs(config, (0.6, 0.9)), runs, cache)
    main = runs / config.name
    evolve(config, main, cache)
    return {
        "dna": {"run_dir": str(main)},
        "alpha_explorer": {"sweep_dirs": [str(folder) for folder in folders], "sweep_table": None},
    }


def slowest_cell(executed: Path) -> float:
    """The longest cell of an executed notebook, in seconds (Papermill records each cell's duration)."""
    if not executed.is_file():
        return float("nan")
    cells = json.loads(executed.read_text())["cells"]
    return max((cell["metadata"].get("papermill", {}).get("duration") or 0.0 for cell in cells), default=0.0)


def execute_once(name: str, parameters: dict[str, object], cell_limit: float, scratch: Path) -> tuple[str, float]:
    """One headless execution: 'passed', 'hung' (a cell ran past ``cell_limit``) or 'failed: ...', and its
    slowest cell in seconds (every cell of these pages takes well under 10 s when nothing waits)."""
    source, executed = scratch / f"{name}.ipynb", scratch / f"{name}-out.ipynb"
    executed.unlink(missing_ok=True)
    jupytext.write(jupytext.read(NOTEBOOKS / f"{name}.md"), source)
    try:
        papermill.execute_notebook(str(source), str(executed), parameters=parameters, kernel_name="python3",
                                   progress_bar=False, execution_timeout=cell_limit, start_timeout=120)
    except CellTimeoutError:
        return "hung", slowest_cell(executed)
    except (PapermillExecutionError, DeadKernelError, RuntimeError) as error:
        return f"failed: {type(error).__name__}: {str(error)[:200]}", slowest_cell(executed)
    return "passed", slowest_cell(executed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=30, help="executions in all (30), alternating notebooks")
    parser.add_argument("--cell-limit", type=float, default=120.0,
                        help="seconds a cell may run before the execution counts as hung (120; a cell takes < 10)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "evosynth-stress")
    parser.add_argument("--report", type=Path, default=None, help="also write the counts as JSON here")
    arguments = parser.parse_args()

    parameters = prepare(arguments.work)
    names = list(parameters)
    outcomes: list[dict[str, object]] = []
    cores = multiprocessing.cpu_count()
    with tempfile.TemporaryDirectory() as scratch:
        for index in range(arguments.executions):
            name = names[index % len(names)]
            loaded = index % 4 >= 2  # half of each notebook's executions run under load
            load: list[multiprocessing.Process] = []
            if loaded:
                stop_at = time.time() + 10 * arguments.cell_limit
                load = [multiprocessing.Process(target=busy, args=(stop_at,), daemon=True) for _ in range(cores)]
                for process in load:
                    process.start()
            started = time.perf_counter()
            outcome, slowest = execute_once(name, parameters[name], arguments.cell_limit, Path(scratch))
            if outcome != "passed" or slowest > STALL_S:  # kept for inspection
                executed = Path(scratch) / f"{name}-out.ipynb"
                if executed.is_file():
                    shutil.copy(executed, arguments.work / f"execution-{index + 1:02d}-{name}.ipynb")
            seconds = time.perf_counter() - started
            for process in load:
                process.terminate()
                process.join()
            outcomes.append({"notebook": name, "loaded": loaded, "outcome": outcome, "seconds": round(seconds, 1),
                             "slowest_cell_s": round(slowest, 1)})
            print(f"{index + 1:3d}/{arguments.executions} {name:15} {'loaded' if loaded else 'idle  '} "
                  f"{outcome} ({seconds:.1f} s, slowest cell {slowest:.1f} s)", flush=True)
    counts = Counter(str(o["outcome"]).split(":")[0] for o in outcomes)
    # a cell that waited this long without hanging is a stall: the same lost message, recovered by chance
    stalled = sum(1 for o in outcomes if o["outcome"] == "passed" and float(o["slowest_cell_s"]) > STALL_S)
    from evosynth.deploy.machine import describe_machine

    report = {"machine": describe_machine(), "cell_limit_s": arguments.cell_limit, "executions": len(outcomes),
              "counts": dict(counts), "stalled_over_s": STALL_S, "stalled": stalled, "outcomes": outcomes}
    print(f"{len(outcomes)} executions: {counts.get('passed', 0)} passed, {counts.get('hung', 0)} hung, "
          f"{counts.get('failed', 0)} failed; {stalled} passed after a cell stalled over {STALL_S:g} s")
    if arguments.report:
        arguments.report.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
