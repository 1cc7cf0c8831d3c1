"""How fast can a detector of this architecture get on a whole frame? Dense networks of chosen widths, timed.

The evolution can only remove filters; whatever the widths, the input frame is read and the first layer writes a map
of half the frame's resolution. This script times dense detectors of the shallow preset's depth and strides (the
5-layer chain) with random weights on one 640x480 frame, per backend, interleaved in rounds (medians), and writes a
JSON with the machine: the ceiling of the speed-up any generation can reach over generation 1 on each backend, and
what channel counts that are multiples of the vector width buy at a given MAC count.

    .venv/bin/python benchmarks/structure_ceiling.py --out benchmarks/structure_ceiling_<machine>.json
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Hashable, Mapping
from functools import partial
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from evosynth.deploy.backends import BACKENDS, onnxruntime_session, openvino_request
from evosynth.deploy.export import onnx_bytes
from evosynth.deploy.machine import write_measurement
from evosynth.study.presets import get_preset
from evosynth.task.model import FRAME_SIZE, Architecture, GridDetector, frame_macs

Key = TypeVar("Key", bound=Hashable)
WIDTHS = {  # name -> backbone widths
    "ancestor": (32, 48, 64, 96, 128),
    "default run, generation 13": (9, 20, 23, 37, 37),
    "dense, multiples of 16": (16, 16, 16, 32, 32),
    "dense, 16-24": (16, 24, 24, 32, 32),
    "dense, multiples of 8": (8, 16, 16, 32, 32),
    "dense, 8-16": (8, 8, 8, 16, 16),
    "dense, 4 everywhere (the floor)": (4, 4, 4, 4, 4),
}


def frame_steps(path: Path, threads: int) -> dict[str, Callable[[], object]]:
    """One frame's inference per backend: the same sessions and compiled models ``evosynth bench`` times."""
    shape = (1, 3, *FRAME_SIZE)
    frame = np.random.default_rng(0).random(shape, dtype=np.float32)
    steps: dict[str, Callable[[], object]] = {}
    for precision in ("fp32", "bf16"):
        if BACKENDS[f"openvino-{precision}"].unavailable() is None:
            steps[f"openvino-{precision}"] = partial(openvino_request(path, shape, precision, threads).infer,
                                                     {0: frame})
    session = onnxruntime_session(path, threads)
    steps["onnxruntime-cpu"] = lambda: session.run(None, {"images": frame})
    return steps


def time_cells(cells: Mapping[Key, Callable[[], object]], rounds: int, sample_ms: float) -> dict[Key, list[float]]:
    """Milliseconds per call of each cell: every cell warmed up, then timed in interleaved rounds (every cell once
    per round, alternate rounds reversed) of ``sample_ms`` each."""
    samples: dict[Key, list[float]] = {key: [] for key in cells}
    for step in cells.values():
        for _ in range(5):
            step()
    for round_number in tqdm(range(rounds), desc="rounds", unit="round"):
        order = list(cells.items())
        for key, step in order if round_number % 2 == 0 else reversed(order):
            started, calls = time.perf_counter(), 0
            while (time.perf_counter() - started) * 1e3 < sample_ms:
                step()
                calls += 1
            samples[key].append((time.perf_counter() - started) * 1e3 / calls)
    return samples


def time_frames(networks: dict[str, torch.nn.Module], rounds: int, threads: int, sample_ms: float
                ) -> dict[tuple[str, str], list[float]]:
    """Milliseconds per 640x480 frame at batch 1, per (network, backend): each network exported to ONNX, then
    every backend's step timed by ``time_cells``."""
    torch.set_num_threads(threads)
    cells: dict[tuple[str, str], Callable[[], object]] = {}
    with TemporaryDirectory() as folder:
        for name, network in networks.items():
            path = Path(folder) / f"{len(cells)}.onnx"
            path.write_bytes(onnx_bytes(network.eval(), torch.rand(1, 3, *FRAME_SIZE)))
            for backend, step in frame_steps(path, threads).items():
                cells[name, backend] = step
        return time_cells(cells, rounds, sample_ms)


def timing_parser(description: str | None, rounds: int, sample_ms: float | None = None) -> argparse.ArgumentParser:
    """The options every timing script takes: where its JSON goes, how many interleaved rounds on how many
    threads, and (frame timings, ``time_frames``) how long each sample lasts."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where the JSON goes")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--threads", type=int, default=2)
    if sample_ms is not None:
        parser.add_argument("--sample-ms", type=float, default=sample_ms)
    return parser


def main() -> None:
    arguments = timing_parser(__doc__, rounds=9, sample_ms=50.0).parse_args()
    strides = tuple(get_preset("shallow").network.arguments["strides"])
    samples = time_frames({name: GridDetector(Architecture(3, widths, strides)) for name, widths in WIDTHS.items()},
                          arguments.rounds, arguments.threads, arguments.sample_ms)
    ancestor_macs = frame_macs(GridDetector(Architecture(3, WIDTHS["ancestor"], strides)))
    rows = []
    for (name, backend), times in samples.items():
        macs = frame_macs(GridDetector(Architecture(3, WIDTHS[name], strides)))
        median = float(np.median(times))
        ancestor = float(np.median(samples["ancestor", backend]))
        rows.append({"network": name, "widths": list(WIDTHS[name]), "backend": backend, "macs": macs,
                     "median_ms": median, "q1_ms": float(np.percentile(times, 25)),
                     "q3_ms": float(np.percentile(times, 75)), "fps": 1e3 / median,
                     "speedup_vs_ancestor": ancestor / median, "mac_reduction": ancestor_macs / macs})
    print(write_measurement(arguments.out, {"frame": list(FRAME_SIZE), "threads": arguments.threads,
                                            "rounds": arguments.rounds, "results": rows}))
    for row in rows:
        print(f"{row['network']:34s} {row['backend']:16s} {row['macs'] / 1e9:6.3f} GMAC  {row['fps']:6.0f} fps  "
              f"{row['speedup_vs_ancestor']:5.2f}x for {row['mac_reduction']:5.1f}x fewer MACs")


if __name__ == "__main__":
    main()
